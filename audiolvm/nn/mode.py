"""Temporary module modes: eval mode, or frozen weights, for the length of a ``with`` block.

Every eval-mode entry point of the models (``reconstruct``, ``encode``, sampling) and of the evaluation code goes
through :func:`eval_mode`, so a model handed over in training mode is handed back in training mode even when the
block raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from torch import nn

M = TypeVar("M", bound=nn.Module)


@contextmanager
def eval_mode(module: M) -> Iterator[M]:
    """``module`` in eval mode inside the block; its previous mode (``module.train(was_training)``) after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextmanager
def frozen(module: M) -> Iterator[M]:
    """``module`` in eval mode with every parameter's ``requires_grad`` off inside the block; each parameter's own
    flag and the module's mode restored after."""
    flags = [p.requires_grad for p in module.parameters()]
    with eval_mode(module):
        module.requires_grad_(False)
        try:
            yield module
        finally:
            for param, flag in zip(module.parameters(), flags, strict=True):
                param.requires_grad_(flag)
