"""Corpus readers: VCTK, LibriSpeech, any folder of audio, and HF ``datasets``.

Every reader has ``entries()`` (a cached header scan, see :mod:`audiolvm.data.manifest`),
``__iter__`` (decoded mono :class:`Utterance` objects) and owns loading: ``load(entry)`` and
``load_window(entry, offset, frames)``, so datasets never open files themselves. Files that cannot
be used are skipped, never raised mid-corpus: ``reader.skipped`` counts reasons and
``reader.skipped_files`` lists ``(path, reason)``; each is logged once on ``audiolvm.data``.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiolvm.core.audio import AudioError, AudioInfo, load_audio, resample
from audiolvm.data.manifest import (
    AUDIO_EXTENSIONS,
    CorpusError,
    Entry,
    ScanResult,
    cached_scan,
    decode_source,
    has_files,
    librispeech_splits,
    no_audio_message,
    probe_files,
    probe_source,
    walk_files,
)

LOG = logging.getLogger("audiolvm.data")
_MIC = re.compile(r"_(mic\d+)$")


@dataclass
class Utterance:
    """A decoded utterance. ``wave`` is float32 mono of shape (T,) at ``sample_rate``."""

    wave: np.ndarray
    sample_rate: int
    speaker: str
    utterance: str
    text: str
    path: str


def require_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder (field root); pass --data to an existing corpus folder")
    return root


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else ""


class CorpusReader:
    """Base of every reader: skip bookkeeping, loading and iteration over ``entries()``.

    Args:
        sample_rate: rate of the waves that ``__iter__`` and ``load`` return (None: the file's).
    """

    kind = "base"

    def __init__(self, sample_rate: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.skipped: Counter[str] = Counter()
        self.skipped_files: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self._memo: tuple[tuple[str, int | None], np.ndarray] | None = None  # the last utterance resampled

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def skip(self, path: str, reason: str) -> None:
        """Count and log an unusable file once per reader. The Counter key drops details in parentheses."""
        if (path, reason) in self._seen:
            return
        self._seen.add((path, reason))
        self.skipped[reason.split(" (")[0]] += 1
        self.skipped_files.append((path, reason))
        LOG.warning("skipping %s: %s", path, reason)

    def read(self, entry: Entry, offset: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
        """Decode ``frames`` samples from ``offset`` (file rate) as mono float32 (T,). Raises AudioError."""
        return load_audio(entry.path, offset=offset, frames=frames)

    def load(self, entry: Entry, sample_rate: int | None = None) -> np.ndarray:
        """The whole utterance, mono float32 (T,), at ``sample_rate`` or the reader's (None: file rate)."""
        wave, rate = self.read(entry)
        target = sample_rate or self.sample_rate
        return resample(wave, rate, target) if target and target != rate else wave

    def load_window(self, entry: Entry, offset: int, frames: int) -> np.ndarray:
        """Only ``frames`` samples from ``offset``, at the file's rate (no resampling), shape (T,)."""
        return self.read(entry, offset, frames)[0]

    def span_length(self, entry: Entry, sample_rate: int) -> int:
        """Length of the utterance at ``sample_rate``, in samples (what :meth:`load_span` indexes)."""
        return entry.frames if entry.sample_rate == sample_rate else len(self._resampled(entry, sample_rate))

    def load_span(self, entry: Entry, start: int, frames: int, sample_rate: int) -> np.ndarray:
        """Samples ``[start, start + frames)`` of the utterance at ``sample_rate``, shape (<= frames,). At the
        file's rate only the window is read; at another rate the whole utterance is decoded and resampled, and
        the last one is kept, so further spans of it (a crop drawn again) cost no decode."""
        if entry.sample_rate == sample_rate:
            return self.load_window(entry, start, frames)
        return self._resampled(entry, sample_rate)[start : start + frames]

    def _resampled(self, entry: Entry, sample_rate: int) -> np.ndarray:
        key = (entry.path, sample_rate)
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, self.load(entry, sample_rate))
        return self._memo[1]

    def __iter__(self) -> Iterator[Utterance]:
        for entry in self.entries():
            try:
                wave = self.load(entry)
            except AudioError as err:
                self.skip(entry.path, err.reason)
                continue
            rate = self.sample_rate or entry.sample_rate
            yield Utterance(wave, rate, entry.speaker, entry.utterance, entry.text, entry.path)


def skip_summary(*counts: Counter[str]) -> str:
    """``"5 skipped: 3 silent, 2 unreadable by soundfile"`` from skip counters (summed), or ``"none skipped"``."""
    total: Counter[str] = sum(counts, Counter())
    if not total:
        return "none skipped"
    return f"{total.total()} skipped: " + ", ".join(f"{n} {reason}" for reason, n in total.most_common())


def unusable_name(path: Path) -> str | None:
    """Why ``path`` cannot be scanned before it is even opened (None if it can): a name that is not valid
    UTF-8 (it cannot be written to the manifest) or a symbolic link whose target is missing."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (rename the file)"
    if not path.exists():
        return "dangling link (its target is missing)" if path.is_symlink() else "vanished during the scan"
    return None


class FileCorpusReader(CorpusReader):
    """Base for readers of a corpus folder. Subclasses give ``kind``, ``audio_files`` and ``describe``.

    Args:
        root: corpus folder.
        sample_rate: see :class:`CorpusReader`.
        cache: reuse/write the manifest cache; cache_dir: keep it there instead of ``root``.
        workers: threads for the header probe.
    """

    def __init__(self, root: str | Path, sample_rate: int | None = None, *, cache: bool = True,
                 cache_dir: str | Path | None = None, workers: int = 8) -> None:
        super().__init__(sample_rate)
        self.root = require_dir(root)
        self.cache, self.cache_dir, self.workers = cache, cache_dir, workers

    def options(self) -> dict[str, Any]:
        """Reader options that change the entries; part of the manifest signature."""
        return {}

    def audio_files(self) -> list[Path]:
        raise NotImplementedError

    def signature_files(self) -> list[Path]:
        """Non-audio files the entries depend on (transcripts)."""
        return []

    def describe(self, files: Sequence[Path]) -> list[tuple[str, str, str]]:
        """``(speaker, utterance, text)`` for each audio file."""
        raise NotImplementedError

    def entries(self) -> list[Entry]:
        """All usable entries, sorted by path. Bad files are counted in ``skipped``."""
        files = []
        for path in self.audio_files():
            if reason := unusable_name(path):
                self.skip(path.as_posix().encode("utf-8", "backslashreplace").decode(), reason)
            else:
                files.append(path)
        if not files:
            raise CorpusError(no_audio_message(self.root))
        result = cached_scan(
            self.root, self.kind, self.options(), files, lambda: self._scan(files),
            signature_files=self.signature_files(), cache=self.cache, cache_dir=self.cache_dir,
        )
        for path, reason in result.bad:
            self.skip(path, reason)
        if self.skipped:
            LOG.warning("%s: %d usable audio files, %s", self.root, len(result.entries), skip_summary(self.skipped))
        return result.entries

    def _scan(self, files: Sequence[Path]) -> ScanResult:
        infos = probe_files(files, self.workers)
        good = [(p, i) for p, i in zip(files, infos, strict=True) if isinstance(i, AudioInfo)]
        names = self.describe([p for p, _ in good])
        entries = [Entry(str(p), spk, utt, text, info.duration, info.sample_rate, info.frames)
                   for (p, info), (spk, utt, text) in zip(good, names, strict=True)]
        bad = [(str(p), i.reason) for p, i in zip(files, infos, strict=True) if isinstance(i, AudioError)]
        return ScanResult(entries, bad)


class VCTKReader(FileCorpusReader):
    """VCTK 0.92 (``wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac``) or 0.80 (``wav48/``).

    Transcripts come from ``txt/<spk>/<spk>_<utt>.txt``; a missing one gives empty text. Only
    files of ``mic`` are kept (files without a mic suffix always are); ``mic=None`` keeps all,
    and then the utterance id keeps the mic suffix so that ids stay unique.
    """

    kind = "vctk"

    def __init__(self, root: str | Path, mic: str | None = "mic1", sample_rate: int | None = None,
                 **kw: Any) -> None:
        super().__init__(root, sample_rate, **kw)
        self.mic = mic
        dirs = [self.root / d for d in ("wav48_silence_trimmed", "wav48") if (self.root / d).is_dir()]
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
            text = _read_text(self.root / "txt" / speaker / f"{utt}.txt")
            out.append((speaker, p.stem if self.mic is None else utt, text))
        return out


class LibriSpeechReader(FileCorpusReader):
    """LibriSpeech: ``<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` + ``<spk>-<chapter>.trans.txt``.

    ``root`` is the folder holding split folders (``train-clean-100`` ...) or one split folder;
    ``splits`` keeps only those split names.
    """

    kind = "librispeech"

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


class FolderReader(FileCorpusReader):
    """Any folder of audio files, searched recursively.

    speaker: the parent folder relative to ``root`` (``"a/b"`` for ``root/a/b/x.wav``), or
    ``"unknown"`` for files at the top level. utterance: the relative path without suffix.
    text: a sibling ``<name>.txt`` if present.
    """

    kind = "folder"

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
            out.append((speaker, rel.with_suffix("").as_posix(), _read_text(p.with_suffix(".txt"))))
        return out


class HFDatasetReader(CorpusReader):
    """Adapter for a ``datasets.Dataset`` whose ``audio_column`` holds Audio (or raw bytes).

    The column is cast to ``Audio(decode=False)`` and decoded with soundfile (no torchcodec).
    Entries get virtual paths ``hf://<row index>``; they are scanned once per reader, in memory.
    ``speaker_column``/``id_column``/``text_column`` default to "unknown", the row index and "".
    """

    kind = "hf"

    def __init__(self, dataset: Any, audio_column: str = "audio", speaker_column: str | None = None,
                 text_column: str | None = None, id_column: str | None = None,
                 sample_rate: int | None = None) -> None:
        from datasets import Audio

        for field, col in [("audio_column", audio_column), ("speaker_column", speaker_column),
                           ("text_column", text_column), ("id_column", id_column)]:
            if col is not None and col not in dataset.column_names:
                raise CorpusError(f"HF dataset: no column {col!r} (field {field}); columns are "
                                  f"{dataset.column_names}; pass {field}=<one of them>")
        if isinstance(dataset.features[audio_column], Audio):
            dataset = dataset.cast_column(audio_column, Audio(decode=False))
        super().__init__(sample_rate)
        self.dataset = dataset
        self.audio_column, self.speaker_column = audio_column, speaker_column
        self.text_column, self.id_column = text_column, id_column
        self._scan_result: ScanResult | None = None

    def entries(self) -> list[Entry]:
        if self._scan_result is None:
            self._scan_result = self._scan_rows()
        if not self._scan_result.entries and not self._scan_result.bad:
            raise CorpusError("HF dataset: 0 rows; pass a dataset with audio rows")
        for path, reason in self._scan_result.bad:
            self.skip(path, reason)
        return self._scan_result.entries

    def _scan_rows(self) -> ScanResult:
        entries, bad = [], []
        for i in range(len(self.dataset)):
            row = self.dataset[i]
            name = f"hf://{i}"
            try:
                info = probe_source(self._source(row[self.audio_column], name), name)
            except AudioError as err:
                bad.append((name, err.reason))
                continue
            speaker = self._label(self.speaker_column, row, "unknown")
            utt = self._label(self.id_column, row, str(i))
            text = self._label(self.text_column, row, "")
            entries.append(Entry(name, speaker, utt, text, info.duration, info.sample_rate, info.frames))
        return ScanResult(entries, bad)

    def _label(self, column: str | None, row: dict, default: str) -> str:
        if column is None:
            return default
        feature, value = self.dataset.features[column], row[column]
        return str(feature.int2str(value) if hasattr(feature, "int2str") else value)

    @staticmethod
    def _source(value: Any, name: str) -> io.BytesIO | str:
        if isinstance(value, (bytes, bytearray)):
            return io.BytesIO(value)
        if isinstance(value, dict) and value.get("bytes"):
            return io.BytesIO(value["bytes"])
        if isinstance(value, dict) and value.get("path"):
            return str(value["path"])
        raise AudioError(name, "no audio bytes or path in the row", "check audio_column")

    def read(self, entry: Entry, offset: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
        index = int(entry.path.removeprefix("hf://"))
        source = self._source(self.dataset[index][self.audio_column], entry.path)
        return decode_source(source, entry.path, offset, frames)


READERS: dict[str, type[FileCorpusReader]] = {"vctk": VCTKReader, "librispeech": LibriSpeechReader,
                                          "folder": FolderReader}


def detect_kind(root: str | Path) -> str:
    """"vctk", "librispeech", "music" or "folder" from the layout of ``root``; CorpusError if no audio."""
    from audiolvm.data.music import is_music_corpus  # music.py subclasses FileCorpusReader: import late

    root = Path(root)
    if (root / "wav48_silence_trimmed").is_dir() or (root / "wav48").is_dir():
        return "vctk"
    if librispeech_splits(root):
        return "librispeech"
    if is_music_corpus(root):
        return "music"
    if has_files(root, AUDIO_EXTENSIONS):
        return "folder"
    raise CorpusError(no_audio_message(root))


def open_corpus(root: str | Path, kind: str = "auto", **kw: Any) -> FileCorpusReader:
    """The reader for ``root``: ``kind`` is "auto" (detect) or a key of READERS ("music": music.py)."""
    root = require_dir(root)
    kind = detect_kind(root) if kind == "auto" else kind
    if kind not in READERS:
        raise CorpusError(f"{root}: unknown corpus kind {kind!r} (field kind); "
                          f"use auto, {', '.join(READERS)}")
    return READERS[kind](root, **kw)
