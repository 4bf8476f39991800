"""What every part of ``audiolvm.data`` speaks in: :class:`Entry` (one utterance found by a scan) and
:class:`CorpusError` (a corpus that cannot be used as a whole). Imports nothing from the package."""

from __future__ import annotations

from dataclasses import dataclass

from audiolvm.core.errors import UsageError


class CorpusError(UsageError):
    """A corpus that cannot be used as a whole (no files, unknown layout, every file bad)."""


@dataclass(frozen=True)
class Entry:
    """One utterance of a corpus, as found by a scan. ``frames`` and ``sample_rate`` are the file's."""

    path: str
    speaker: str
    utterance: str
    text: str
    duration: float
    sample_rate: int
    frames: int
