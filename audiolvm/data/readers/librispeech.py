"""LibriSpeech: ``<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` + ``<spk>-<chapter>.trans.txt``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audiolvm.data.entry import CorpusError
from audiolvm.data.layout import AUDIO_EXTENSIONS, walk_files
from audiolvm.data.readers.base import FileCorpusReader


def is_librispeech_split(folder: Path) -> bool:
    """True if ``folder`` looks like one LibriSpeech split (``<spk>/<chapter>/*.trans.txt``)."""
    return next(folder.glob("*/*/*.trans.txt"), None) is not None


def librispeech_splits(root: Path) -> dict[str, Path]:
    """Split folders of a LibriSpeech tree: ``root`` itself if it is one, else its children."""
    if is_librispeech_split(root):
        return {root.name: root}
    found = {c.name: c for c in sorted(root.iterdir()) if c.is_dir() and is_librispeech_split(c)}
    if not found and (root / "LibriSpeech").is_dir():
        return librispeech_splits(root / "LibriSpeech")
    return found


class LibriSpeechReader(FileCorpusReader):
    """LibriSpeech: ``<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` + ``<spk>-<chapter>.trans.txt``.

    ``root`` is the folder holding split folders (``train-clean-100`` ...) or one split folder;
    ``splits`` keeps only those split names.
    """

    kind = "librispeech"
    layout = "<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return bool(librispeech_splits(root))

    def __init__(self, root: str | Path, splits: Sequence[str] | None = None, sample_rate: int | None = None,
                 **kw: Any) -> None:
        super().__init__(root, sample_rate, **kw)
        found = librispeech_splits(self.root)
        if not found:
            raise CorpusError(f"{self.root}: no LibriSpeech split folders (<split>/<spk>/<chapter>/"
                              "<spk>-<chapter>.trans.txt); pass --data to the LibriSpeech folder")
        unknown = sorted(set(splits or ()) - set(found))
        if unknown:
            raise CorpusError(f"{self.root}: splits {unknown} not found (field splits); "
                              f"available: {sorted(found)}")
        self.split_dirs = {k: v for k, v in found.items() if splits is None or k in splits}

    def options(self) -> dict[str, Any]:
        return {"splits": sorted(self.split_dirs)}

    def audio_files(self) -> list[Path]:
        return sorted(p for d in self.split_dirs.values() for p in walk_files(d, AUDIO_EXTENSIONS))

    def signature_files(self) -> list[Path]:
        return sorted(p for d in self.split_dirs.values() for p in d.glob("*/*/*.trans.txt"))

    def describe(self, files: Sequence[Path]) -> list[tuple[str, str, str]]:
        transcripts: dict[Path, dict[str, str]] = {}
        out = []
        for p in files:
            if p.parent not in transcripts:
                transcripts[p.parent] = {}
                for trans in p.parent.glob("*.trans.txt"):
                    for line in trans.read_text(encoding="utf-8", errors="replace").splitlines():
                        utt, _, text = line.strip().partition(" ")
                        transcripts[p.parent][utt] = text.strip()
            out.append((p.stem.split("-")[0], p.stem, transcripts[p.parent].get(p.stem, "")))
        return out

