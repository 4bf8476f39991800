"""Reader for a rendered music corpus: ``audio/<track_id>.<ext>`` plus ``metadata.csv``.

This is the layout ``data_scripts/make_music_corpus.py`` writes (Bach chorales played by General
MIDI ensembles), and any music collection can be put in it: one row per track in
``metadata.csv`` with at least a ``track_id`` column, audio files under ``audio/`` (subfolders
allowed; the track id is the path below ``audio/`` without its suffix, e.g. ``bwv153.1`` or
``album/track01``).

Entries: ``utterance`` = track id, ``text`` = the ``title`` column, ``speaker`` = the ``label``
column (default ``ensemble``, the timbre family of the rendered chorales). ``speaker`` is what
later stages use as a conditioning or grouping label (speaker for speech; artist, genre or
instrumentation for music), so pick the column that plays that role in your corpus, e.g.
``label="artist"``. Tracks without a metadata row, or with an empty label, get ``"unknown"``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audiolvm.data.entry import CorpusError
from audiolvm.data.layout import AUDIO_EXTENSIONS, walk_files
from audiolvm.data.readers.base import FileCorpusReader

METADATA, AUDIO_DIR = "metadata.csv", "audio"


def is_music_corpus(root: str | Path) -> bool:
    """True when ``root`` has the music layout: ``metadata.csv`` and an ``audio/`` folder."""
    return (Path(root) / METADATA).is_file() and (Path(root) / AUDIO_DIR).is_dir()


def read_metadata(path: Path) -> dict[str, dict[str, str]]:
    """``metadata.csv`` as ``{track_id: row}``. CorpusError if it has no ``track_id`` column."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{path}: unreadable ({exc}); regenerate it or fix the CSV") from exc
    if "track_id" not in columns:
        raise CorpusError(f"{path}: no track_id column (columns: {columns}); add a header row with "
                          "track_id (one row per audio/<track_id> file)")  # fmt: skip
    return {row["track_id"]: row for row in rows}


class MusicCorpusReader(FileCorpusReader):
    """A music corpus: ``audio/<track_id>.<ext>`` and ``metadata.csv`` (see the module docstring).

    Args:
        root: the corpus folder.
        label: the ``metadata.csv`` column used as ``speaker`` (the grouping/conditioning label).
        extensions, sample_rate, cache, cache_dir, workers: as for :class:`FolderReader`.
    """

    kind = "music"
    layout = f"{METADATA} and {AUDIO_DIR}/<track_id>.<ext>"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return is_music_corpus(root)

    def __init__(self, root: str | Path, label: str = "ensemble", extensions: Sequence[str] = AUDIO_EXTENSIONS,
                 sample_rate: int | None = None, **kw: Any) -> None:  # fmt: skip
        super().__init__(root, sample_rate, **kw)
        if not self.matches(self.root):
            raise CorpusError(f"{self.root}: not a music corpus (needs {METADATA} and {AUDIO_DIR}/); "
                              "pass --data to such a folder, or use kind='folder'")  # fmt: skip
        self.label = label
        self.extensions = tuple(sorted({e.lower() for e in extensions}))
        self.metadata = read_metadata(self.root / METADATA)
        columns = set().union(*(row.keys() for row in self.metadata.values())) if self.metadata else set()
        if self.metadata and label not in columns:
            raise CorpusError(f"{self.root / METADATA}: no column {label!r} (field label); "
                              f"columns are {sorted(columns)}; pass label=<one of them>")  # fmt: skip

    def options(self) -> dict[str, Any]:
        return {"label": self.label, "extensions": list(self.extensions)}

    def audio_files(self) -> list[Path]:
        return walk_files(self.root / AUDIO_DIR, self.extensions)

    def signature_files(self) -> list[Path]:
        return [self.root / METADATA]

    def track_id(self, path: Path) -> str:
        """``audio/a/b.flac`` -> ``a/b``; only the last suffix goes (``bwv153.1.flac`` -> ``bwv153.1``)."""
        return path.relative_to(self.root / AUDIO_DIR).with_suffix("").as_posix()

    def describe(self, files: Sequence[Path]) -> list[tuple[str, str, str]]:
        out = []
        for p in files:
            track = self.track_id(p)
            row = self.metadata.get(track, {})
            out.append(((row.get(self.label) or "").strip() or "unknown", track, (row.get("title") or "").strip()))
        return out

