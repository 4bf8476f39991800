"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

# Runs that tests compare bitwise (resume, two processes, CLI runs in subprocesses) must use equal thread counts,
# so the suite pins today's count: train.threads=auto then leaves it alone (tests/test_threads.py tests the policy).
os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny models: more threads only add overhead (and stall on a
    busy machine). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")`` or as an argument."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
