"""Atomic file writes: write beside the target, then ``os.replace``, so a crash never leaves a
half-written file under the final name."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from audiolvm.core.errors import UsageError


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a unique temporary file beside ``path``, then ``os.replace`` it into place. The file gets
    the permissions a plain ``open(path, "wb")`` would give it (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name, created exclusively with mode 0666 so that the umask applies as in open() (mkstemp's 0600
    # would make every artefact private to its writer)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """UTF-8 ``text`` written atomically (see :func:`atomic_write_bytes`); newlines are kept as given."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str], fix: str = "delete it and write it again") -> Any:
    """Parse a JSON file; a file that is not valid JSON (truncated, hand-edited) raises ValueError naming the
    file, the position and ``fix``, instead of a bare decoder message."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}); {fix}") from exc
