"""The pace of training between two log points: optimizer steps per second, and the share of wall time spent
waiting for batches (near 1 means the data loader is the bottleneck)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch


class Pace:
    """Wall time and batch waits since :meth:`start` (or the last :meth:`read`), from optimizer step ``step`` on."""

    def __init__(self, step: int = 0) -> None:
        self.start(step)

    def start(self, step: int) -> None:
        """Measure from now, at optimizer step ``step``."""
        self._clock, self._waited = (time.perf_counter(), step), 0.0

    def timed(self, loader: Iterable[Any]) -> Iterator[Any]:
        """Iterate ``loader``, adding the seconds spent waiting for each batch to the batch waits."""
        batches = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self._waited += time.perf_counter() - t0
            yield batch

    def read(self, step: int) -> dict[str, float]:
        """``time/steps_per_s`` and ``time/data_wait`` (the share of wall time spent waiting for batches) since the
        previous reading, and ``time/threads``; then measure again from now. Read at a sync point, so the device's
        work is inside the wall time."""
        now = time.perf_counter()
        wall, steps = now - self._clock[0], step - self._clock[1]
        out = {}
        if wall > 0 and steps > 0:
            out = {"time/steps_per_s": steps / wall, "time/data_wait": self._waited / wall,
                   "time/threads": float(torch.get_num_threads())}
        self._clock, self._waited = (now, step), 0.0
        return out
