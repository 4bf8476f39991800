"""VCTK 0.92 (``wav48_silence_trimmed/``) and 0.80 (``wav48/``): ``<spk>/<spk>_<utt>_mic1.flac`` + ``txt/``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audiolvm.data.entry import CorpusError
from audiolvm.data.layout import AUDIO_EXTENSIONS, walk_files
from audiolvm.data.readers.base import FileCorpusReader, read_text

_MIC = re.compile(r"_(mic\d+)$")
AUDIO_DIRS = ("wav48_silence_trimmed", "wav48")  # 0.92, then 0.80


class VCTKReader(FileCorpusReader):
    """VCTK 0.92 (``wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac``) or 0.80 (``wav48/``).

    Transcripts come from ``txt/<spk>/<spk>_<utt>.txt``; a missing one gives empty text. Only
    files of ``mic`` are kept (files without a mic suffix always are); ``mic=None`` keeps all,
    and then the utterance id keeps the mic suffix so that ids stay unique.
    """

    kind = "vctk"
    layout = "wav48_silence_trimmed/<spk>/ or wav48/<spk>/"

    @classmethod
    def matches(cls, root: Path) -> bool:
        return any((root / d).is_dir() for d in AUDIO_DIRS)

    def __init__(self, root: str | Path, mic: str | None = "mic1", sample_rate: int | None = None,
                 **kw: Any) -> None:
        super().__init__(root, sample_rate, **kw)
        self.mic = mic
        dirs = [self.root / d for d in AUDIO_DIRS if (self.root / d).is_dir()]
        if not dirs:
            raise CorpusError(f"{self.root}: no wav48_silence_trimmed/ or wav48/ folder; pass --data to the "
                              "VCTK folder that holds them, or use kind='folder'")
        self.audio_dir = dirs[0]

    def options(self) -> dict[str, Any]:
        return {"mic": self.mic, "audio_dir": self.audio_dir.name}

    def audio_files(self) -> list[Path]:
        files = walk_files(self.audio_dir, AUDIO_EXTENSIONS)
        if self.mic is None:
            return files
        return [p for p in files if (m := _MIC.search(p.stem)) is None or m.group(1) == self.mic]

    def signature_files(self) -> list[Path]:
        txt = self.root / "txt"
        return walk_files(txt, (".txt",)) if txt.is_dir() else []

    def describe(self, files: Sequence[Path]) -> list[tuple[str, str, str]]:
        out = []
        for p in files:
            utt = _MIC.sub("", p.stem)
            speaker = utt.split("_")[0]
            text = read_text(self.root / "txt" / speaker / f"{utt}.txt")
            out.append((speaker, p.stem if self.mic is None else utt, text))
        return out

