"""CPU load on this process's cores, from ``/proc/stat``: what the trainer's thread policy
(``audiolvm.engine.threads``) and the benchmarks' other-load figures read. Linux only; elsewhere the readings
are None."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def busy_seconds(cpus: list[int] | None = None) -> float | None:
    """Seconds the given CPUs (default: those this process may run on) have spent busy since boot (user, nice,
    system, irq, softirq, steal); None where ``/proc/stat`` is missing (not Linux)."""
    wanted = {f"cpu{i}" for i in (usable_cpus() if cpus is None else cpus)}
    try:
        with open("/proc/stat") as fh:
            lines = [line.split() for line in fh if line.startswith("cpu")]
    except OSError:
        return None
    ticks = 0
    for fields in lines:
        if fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadMeter:
    """Other processes' CPU use on our cores between two readings, in cores (1.0: one busy core)."""

    cpus: list[int]
    wall: float
    busy: float | None
    own: float

    @classmethod
    def start(cls) -> LoadMeter:
        cpus = usable_cpus()
        return cls(cpus, time.perf_counter(), busy_seconds(cpus), time.process_time())

    def other_load(self) -> float | None:
        """Other load since the last reading (then restarts the window); None without ``/proc/stat``."""
        now = LoadMeter.start()
        wall = now.wall - self.wall
        load = None
        if self.busy is not None and now.busy is not None and wall > 0:
            load = max(0.0, ((now.busy - self.busy) - (now.own - self.own)) / wall)
        self.wall, self.busy, self.own = now.wall, now.busy, now.own
        return load
