"""What every reader shares: skip bookkeeping, loading, iteration, and the cached scan of a corpus folder.

Every reader has ``entries()`` (a cached header scan, see :mod:`audiolvm.data.manifest`),
``__iter__`` (decoded mono :class:`Utterance` objects) and owns loading: ``load(entry)`` and
``load_window(entry, offset, frames)``, so datasets never open files themselves. Files that cannot
be used are skipped, never raised mid-corpus: ``reader.skipped`` counts reasons and
``reader.skipped_files`` lists ``(path, reason)``; each is logged once on ``audiolvm.data``.
A folder reader also says whether a folder has its layout (``matches(root)``); the registry
(:data:`audiolvm.data.readers.READERS`) asks them in turn.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from audiolvm.core.audio import AudioError, AudioInfo, load_audio, resample
from audiolvm.data.entry import CorpusError, Entry
from audiolvm.data.layout import no_audio_message, require_dir, unusable_name
from audiolvm.data.manifest import ScanResult, cached_scan, probe_files

LOG = logging.getLogger("audiolvm.data")


@dataclass
class Utterance:
    """A decoded utterance. ``wave`` is float32 mono of shape (T,) at ``sample_rate``."""

    wave: np.ndarray
    sample_rate: int
    speaker: str
    utterance: str
    text: str
    path: str



def read_text(path: Path) -> str:
    """The stripped text of ``path`` (a transcript), or "" when there is no such file."""
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



def iter_audio(reader: CorpusReader, entries: Sequence[Entry], sample_rate: int, desc: str = "items",
               progress: bool = True) -> Iterator[tuple[Entry, np.ndarray]]:
    """Yield ``(entry, wave)`` at ``sample_rate``; unreadable files are skipped, counted and logged."""
    for entry in tqdm(entries, desc=desc, disable=not progress, dynamic_ncols=True):
        try:
            yield entry, reader.load(entry, sample_rate)
        except AudioError as exc:
            reader.skip(entry.path, exc.reason)


class FileCorpusReader(CorpusReader):
    """Base for readers of a corpus folder. Subclasses give ``kind``, ``layout``, ``matches``, ``audio_files``
    and ``describe``.

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

    layout: ClassVar[str] = ""  # the layout in words, for the error that lists the layouts tried

    @classmethod
    def matches(cls, root: Path) -> bool:
        """True when the folder ``root`` has this reader's layout (``open_corpus`` asks in registry order)."""
        raise NotImplementedError

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
        for bad_path, reason in result.bad:
            self.skip(bad_path, reason)
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

