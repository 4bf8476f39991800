"""Any folder of audio files, searched recursively: the parent folder is the speaker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audiolvm.data.layout import AUDIO_EXTENSIONS, has_files, walk_files
from audiolvm.data.readers.base import FileCorpusReader, read_text


class FolderReader(FileCorpusReader):
    """Any folder of audio files, searched recursively.

    speaker: the parent folder relative to ``root`` (``"a/b"`` for ``root/a/b/x.wav``), or
    ``"unknown"`` for files at the top level. utterance: the relative path without suffix.
    text: a sibling ``<name>.txt`` if present.
    """

    kind = "folder"
    layout = "any audio file below the folder"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return has_files(root, AUDIO_EXTENSIONS)

    def __init__(self, root: str | Path, extensions: Sequence[str] = AUDIO_EXTENSIONS,
                 sample_rate: int | None = None, **kw: Any) -> None:
        super().__init__(root, sample_rate, **kw)
        self.extensions = tuple(sorted({e.lower() for e in extensions}))

    def options(self) -> dict[str, Any]:
        return {"extensions": list(self.extensions)}

    def audio_files(self) -> list[Path]:
        return walk_files(self.root, self.extensions)

    def signature_files(self) -> list[Path]:
        return walk_files(self.root, (".txt",))

    def describe(self, files: Sequence[Path]) -> list[tuple[str, str, str]]:
        out = []
        for p in files:
            rel = p.relative_to(self.root)
            speaker = rel.parent.as_posix() if rel.parent != Path(".") else "unknown"
            out.append((speaker, rel.with_suffix("").as_posix(), read_text(p.with_suffix(".txt"))))
        return out

