"""Corpus readers and the one registry of folder layouts.

:data:`READERS` lists the folder readers in detection order; ``open_corpus(root)`` (``kind="auto"``) takes
the first whose ``matches(root)`` is true. Nothing registers itself when imported: a new reader is added
to this tuple, in the place its layout should be tried. VCTK and LibriSpeech come first (their marker
folders are unambiguous), then the music layout, and the plain folder last, since it matches any folder
with an audio file in it. :class:`HFDatasetReader` reads a ``datasets.Dataset``, not a folder, so it is
not in the registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiolvm.data.entry import CorpusError
from audiolvm.data.layout import AUDIO_EXTENSIONS, require_dir
from audiolvm.data.readers.base import CorpusReader, FileCorpusReader, Utterance, iter_audio, skip_summary
from audiolvm.data.readers.folder import FolderReader
from audiolvm.data.readers.hf import HFDatasetReader
from audiolvm.data.readers.librispeech import LibriSpeechReader
from audiolvm.data.readers.music import MusicCorpusReader
from audiolvm.data.readers.vctk import VCTKReader

#: folder readers in detection order (the first whose ``matches(root)`` is true reads ``root``)
READERS: tuple[type[FileCorpusReader], ...] = (VCTKReader, LibriSpeechReader, MusicCorpusReader, FolderReader)


def reader_class(kind: str, root: str | Path | None = None) -> type[FileCorpusReader]:
    """The registered reader whose ``kind`` is ``kind``; CorpusError naming ``root`` and the kinds there are."""
    for reader in READERS:
        if reader.kind == kind:
            return reader
    where = f"{root}: " if root is not None else ""
    kinds = ", ".join(r.kind for r in READERS)
    raise CorpusError(f"{where}unknown corpus kind {kind!r} (field kind); use auto, {kinds}")


def detect_kind(root: str | Path) -> str:
    """The ``kind`` of the first reader in :data:`READERS` whose layout ``root`` has ("vctk", "librispeech",
    "music", "folder"); CorpusError naming ``root`` and the layouts tried if none has."""
    root = Path(root)
    for reader in READERS:
        if reader.matches(root):
            return reader.kind
    tried = "; ".join(f"{r.kind}: {r.layout}" for r in READERS)
    raise CorpusError(f"{root}: no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)} in the layouts "
                      f"tried, in order: {tried}); pass --data to a folder with audio files")


def open_corpus(root: str | Path, kind: str = "auto", **kw: Any) -> FileCorpusReader:
    """The reader for the folder ``root``: ``kind`` is "auto" (detect, see :data:`READERS`) or a reader's kind.
    ``kw`` goes to the reader (``sample_rate``, ``cache``, ``cache_dir``, ``workers``, and its own options)."""
    root = require_dir(root)
    kind = detect_kind(root) if kind == "auto" else kind
    return reader_class(kind, root)(root, **kw)


__all__ = [
    "READERS",
    "CorpusReader",
    "FileCorpusReader",
    "FolderReader",
    "HFDatasetReader",
    "LibriSpeechReader",
    "MusicCorpusReader",
    "Utterance",
    "VCTKReader",
    "detect_kind",
    "iter_audio",
    "open_corpus",
    "reader_class",
    "skip_summary",
]
