"""Intra-op threads that survive other load on a shared CPU (``train.threads``).

A training step on a CPU is many short OpenMP parallel regions, and each waits for all its threads. When
another process is busy on the same cores, one of ours is descheduled in most regions and the others wait
for it: on 2 cores, one busy Python loop makes 2 threads almost 3x slower, while 1 thread loses a third
(BENCHMARKS.md, "Intra-op threads under other load"). The rule here: use the cores that nobody else is
using, ``threads = clamp(round(cores - other load), 1, torch's count)``, where the other load is the busy
time of this process's CPUs (``/proc/stat``) minus this process's own CPU time, in cores.

The thread count changes the numerics (reductions split differently), so:

- ``auto`` (default) decides once, when training starts, and keeps the count for the whole run; the count is
  saved in the trainer state, and a resumed run uses it again, so exact resume holds.
- ``follow`` re-decides at every log point (the window since the previous one). Faster when load comes and
  goes, but a run's numerics then depend on the machine's load: opt-in.
- ``N`` pins N threads.

Only CPU runs in one process are adapted: on a GPU the host threads barely matter, and a multi-process
launcher (``accelerate launch``) or ``OMP_NUM_THREADS`` has already split the cores on purpose.
"""

from __future__ import annotations

import logging
import time

import torch

from audiolvm.core.cpu import LoadMeter
from audiolvm.core.errors import UsageError

log = logging.getLogger("audiolvm.engine")
MODES = ("auto", "follow")


def parse_threads(value: str) -> str | int:
    """``"auto"``, ``"follow"`` or a positive int; ValueError otherwise."""
    text = str(value).strip().lower()
    if text in MODES:
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"train.threads={value!r}: use 'auto', 'follow' or a number of threads >= 1")


def threads_for(load: float, cores: int, most: int) -> int:
    """The rule: the cores nobody else uses, at least 1 and at most ``most`` (torch's count before)."""
    return max(1, min(most, round(cores - load)))


class ThreadPolicy:
    """Applies ``train.threads`` to ``torch.set_num_threads`` for one run; :meth:`restore` puts back the count
    found at the start.

    Args:
        setting: ``"auto"``, ``"follow"`` or a positive int (as a string from the config).
        adaptive: False where the count is not ours to change (a GPU run, several processes, ``OMP_NUM_THREADS``
            set): ``auto`` and ``follow`` then leave torch's count alone.
        min_window: seconds of load to see before the first decision (waited for at :meth:`begin` if needed).
    """

    def __init__(self, setting: str, adaptive: bool, min_window: float = 0.25) -> None:
        self.mode = parse_threads(setting)
        self.adaptive = adaptive
        self.before = torch.get_num_threads()
        self.min_window = min_window
        self.meter = LoadMeter.start()

    def begin(self, recorded: int = 0) -> int:
        """Set the count for a run starting now; ``recorded`` is the count a resumed run had (0: none)."""
        if isinstance(self.mode, int):
            return self._set(self.mode, f"train.threads={self.mode}")
        if not self.adaptive:
            return torch.get_num_threads()
        if recorded > 0 and self.mode == "auto":
            return self._set(recorded, "as when the run started (train.threads=auto keeps a run's count, so resume "
                                       "is exact; set train.threads=N to change it)")
        wait = self.min_window - (time.perf_counter() - self.meter.wall)
        if wait > 0:
            time.sleep(wait)
        return self._decide()

    def at_sync_point(self) -> int:
        """``follow``: re-decide from the load since the previous sync point. Otherwise a no-op."""
        if self.mode == "follow" and self.adaptive:
            return self._decide()
        return torch.get_num_threads()

    def _decide(self) -> int:
        load = self.meter.other_load()
        if load is None:
            return torch.get_num_threads()
        cores = len(self.meter.cpus)
        n = threads_for(load, cores, self.before)
        return self._set(n, f"other load {load:.2f} of {cores} cores (train.threads={self.mode})")

    def _set(self, n: int, why: str) -> int:
        if n != torch.get_num_threads():
            log.info("intra-op threads %d -> %d: %s", torch.get_num_threads(), n, why)
            torch.set_num_threads(n)
        return n

    def restore(self) -> None:
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)
