"""One run per output folder: a lock file holding the writer's host and PID.

Two runs writing into one ``out_dir`` interleave their ``metrics.csv`` rows and race on the checkpoint
folders. :class:`RunLock` creates ``<out>/.audiolvm.lock`` exclusively; a second run is refused with the
holder's PID. A lock left by a process that no longer exists on this host (a kill -9) is stale and taken
over, with a log line; a lock from another host cannot be checked and is refused with the way to clear it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

from audiolvm.core.errors import UsageError

log = logging.getLogger("audiolvm.engine")
LOCK_NAME = ".audiolvm.lock"


class RunLocked(UsageError):
    """Another live run holds the output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(out_dir): ...`` holds ``out_dir`` for this process (see the module docstring)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self.held = False

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # vanished, or half-written by a process killed while creating it

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and holder.get("host") != me["host"]:
                    raise RunLocked(f"{self.path.parent}: locked by PID {holder.get('pid')} on host "
                                    f"{holder.get('host')}; if that run is over, delete {self.path}") from None
                if holder is not None and _alive(int(holder.get("pid", -1))):
                    raise RunLocked(f"{self.path.parent}: another run (PID {holder['pid']}) is writing to this "
                                    "folder; wait for it to finish or choose another train.out_dir") from None
                log.warning("%s: taking over a stale lock (%s)", self.path,
                            f"PID {holder['pid']} is gone" if holder else "unreadable")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise RunLocked(f"{self.path}: could not take the lock; delete it if no run is using the folder")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
