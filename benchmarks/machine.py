"""Shared measuring helpers for the benchmarks: CPU load of other processes, peak memory."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import Any


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process); machine is NaN off Linux."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    except OSError:
        busy = float("nan")
    return busy, usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident memory of this process (``ru_maxrss``, KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, CPU cores other processes kept busy meanwhile)``; ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before and after so that device work is inside the timing."""
    if sync is not None:
        sync()
    busy0, own0 = cpu_seconds()
    t0 = time.perf_counter()
    out = fn()
    if sync is not None:
        sync()
    wall = time.perf_counter() - t0
    busy1, own1 = cpu_seconds()
    return out, wall, max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall)
