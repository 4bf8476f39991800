"""Shared measuring helpers for the benchmarks: CPU load of other processes, peak memory, the device
(CUDA synchronisation, GPU peak memory, bf16 autocast, its name) and the ``--json`` output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from audiolvm.core.cpu import busy_seconds  # noqa: E402


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the cores this process may use, CPU seconds of this process); the first is NaN off
    Linux. The same reading as the trainer's ``train.threads`` load meter (``audiolvm.core.cpu``)."""
    busy = busy_seconds()
    return float("nan") if busy is None else busy, time.process_time()


def interleaved(steps: dict[str, Callable[[], Any]], rounds: int, warmup: int = 0,
                sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds of each call of every ``steps`` entry, all called once per round, the order reversed every round
    so that each sees the same background load; the first ``warmup`` rounds are not kept."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for i in range(warmup + rounds):
        for name in order:
            t0 = time.perf_counter()
            steps[name]()
            if sync is not None:
                sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
        order.reverse()
    return times


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) another process of this machine has used so far (``/proc/<pid>/stat``; NaN
    off Linux or once it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


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


def is_cuda(device: Any) -> bool:
    """Whether ``device`` (``"cuda"``, ``"cuda:1"``, a ``torch.device``) is a CUDA device."""
    return str(device).startswith("cuda")


def device_sync(device: Any) -> Callable[[], None] | None:
    """The ``sync`` for :func:`timed`: ``torch.cuda.synchronize`` on a CUDA device, else ``None``."""
    if not is_cuda(device):
        return None
    import torch

    return lambda: torch.cuda.synchronize(device)


def peak_gpu_mib(device: Any) -> float | None:
    """Peak memory allocated by tensors on a CUDA ``device`` (``torch.cuda.max_memory_allocated``) in
    MiB; ``None`` off CUDA."""
    if not is_cuda(device):
        return None
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20


def device_name(device: Any) -> str:
    """``torch.cuda.get_device_name`` on CUDA, else the processor's name (``"cpu"`` if unknown)."""
    if is_cuda(device):
        import torch

        return torch.cuda.get_device_name(device)
    return platform.processor() or "cpu"


def bf16_autocast(device: Any, enabled: bool) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device``'s type when ``enabled``, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (``path.tmp``, then ``os.replace``); NaN and
    infinities become ``null``."""
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w") as f:
        json.dump(_finite(obj), f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats as ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
