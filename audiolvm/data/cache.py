"""A corpus resampled once to the training rate (``data.cache: resampled``), so that a crop costs a memory copy
instead of decoding and resampling the whole file.

Real VCTK ships 48 kHz FLAC; a 16 kHz model's :class:`~audiolvm.data.crops.CropDataset` then decodes and
resamples the whole utterance for every crop, which is far slower than a GPU consumes crops
(``benchmarks/bench_loader.py``). :meth:`ResampledCache.build` decodes and resamples every entry whose rate
differs from the training rate once, with a progress bar, into one int16 file read through a memory map
(shared by every loader worker), plus a JSON index keyed like the F0 cache (path, size, mtime, frames, rate).
The cache is a folder ``<root>/.audiolvm_audio.<rate>hz`` (or under ``$XDG_CACHE_HOME/audiolvm`` for a read-only
corpus), published with a rename, so a kill or a concurrent build never leaves half a cache. Entries the index
does not hold (new files) trigger a rebuild. Samples are stored as int16 (-96 dBFS quantisation noise).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from audiolvm.core.audio import AudioError
from audiolvm.core.errors import StorageError
from audiolvm.data.entry import Entry
from audiolvm.data.pitch import cache_locations, entry_key
from audiolvm.data.readers.base import CorpusReader

LOG = logging.getLogger("audiolvm.data")
SAMPLES, INDEX = "samples.i16", "index.json"


def cache_dirs(root: str | Path, rate: int) -> list[Path]:
    """Where the resampled copy of ``root`` may live, in order of preference."""
    return cache_locations(root, f".audiolvm_audio.{rate}hz")


class ResampledCache:
    """Float32 waves of entries at ``rate`` from a memory-mapped int16 file; :meth:`get` returns None for an
    entry it does not hold."""

    def __init__(self, folder: Path, index: dict[str, list[int]], rate: int) -> None:
        self.folder, self.index, self.rate = folder, index, rate
        self._samples: np.ndarray | None = None  # opened lazily in each process (loader workers)
        self._spans: dict[Entry, list[int] | None] = {}  # entry -> index span, so a crop costs no stat or hash

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_samples": None}  # a worker maps the file itself instead of copying it

    def _span(self, entry: Entry) -> list[int] | None:
        if entry not in self._spans:
            self._spans[entry] = self.index.get(entry_key(entry))
        return self._spans[entry]

    def frames(self, entry: Entry) -> int | None:
        """Length of the cached entry in samples (None if not cached)."""
        span = self._span(entry)
        return None if span is None else span[1]

    def get(self, entry: Entry, start: int = 0, frames: int | None = None) -> np.ndarray | None:
        """Samples ``[start, start + frames)`` (all by default) of a cached entry as float32 (T,); None if the
        entry is not cached. Only the span is converted from int16."""
        span = self._span(entry)
        if span is None:
            return None
        if self._samples is None:
            self._samples = np.memmap(self.folder / SAMPLES, dtype=np.int16, mode="r")
        offset, length = span
        stop = length if frames is None else min(length, start + frames)
        return self._samples[offset + start : offset + stop].astype(np.float32) / 32768.0

    @classmethod
    def open(cls, folder: Path, rate: int) -> ResampledCache | None:
        try:
            index = json.loads((folder / INDEX).read_text())
        except (OSError, ValueError):
            return None
        return cls(folder, index["entries"], rate) if index.get("rate") == rate else None

    @classmethod
    def build(cls, reader: CorpusReader, entries: Sequence[Entry], rate: int, root: str | Path,
              progress: bool = True) -> ResampledCache | None:
        """The cache of ``root`` at ``rate`` holding every entry of ``entries`` not already at ``rate``: read
        back if it holds them all, else built again; None when every entry is at ``rate`` already (crops are
        then read as windows of the files). Files that fail to decode are skipped (``reader.skip``)."""
        wanted = [e for e in entries if e.sample_rate != rate]
        if not wanted:
            return None
        candidates = cache_dirs(root, rate)
        for folder in candidates:
            cache = cls.open(folder, rate)
            if cache is not None and all(entry_key(e) in cache.index for e in wanted):
                return cache
        for folder in candidates:
            try:
                return cls._write(reader, wanted, rate, folder, progress)
            except OSError as exc:
                LOG.warning("%s: cannot write the resampled cache here (%s)", folder, exc)
        tried = ", ".join(map(str, candidates))
        raise StorageError(f"no writable place for the resampled cache of {root} (tried {tried}); set data.cache: "
                           "none or make one writable")

    @classmethod
    def _write(cls, reader: CorpusReader, entries: Sequence[Entry], rate: int, folder: Path,
               progress: bool) -> ResampledCache:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        index: dict[str, list[int]] = {}
        offset = 0
        try:
            with open(tmp / SAMPLES, "wb") as out:
                for entry in tqdm(entries, desc=f"resampling to {rate} Hz", disable=not progress or not entries,
                                  dynamic_ncols=True):
                    try:
                        wave = reader.load(entry, rate)  # (T,)
                    except AudioError as exc:
                        reader.skip(entry.path, exc.reason)
                        continue
                    out.write((np.clip(wave, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16).tobytes())
                    index[entry_key(entry)] = [offset, len(wave)]
                    offset += len(wave)
            (tmp / INDEX).write_text(json.dumps({"rate": rate, "entries": index}))
            old = folder.with_name(f"{folder.name}.{os.getpid()}.old")
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        LOG.info("resampled %d files (%.1f h) to %d Hz once; cache %s", len(index), offset / rate / 3600, rate, folder)
        return cls(folder, index, rate)


class CachedReader(CorpusReader):
    """``reader`` whose :meth:`load` at the cache's rate comes from a :class:`ResampledCache`; everything else
    (entries, windows at the file's rate, skip bookkeeping) is the wrapped reader's."""

    def __init__(self, reader: CorpusReader, cache: ResampledCache) -> None:
        self.inner, self.cache = reader, cache
        self.sample_rate = reader.sample_rate

    def __getattr__(self, name: str) -> Any:  # root, kind, skipped, skipped_files, ... of the wrapped reader
        if name in ("inner", "cache"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def entries(self) -> list[Entry]:
        return self.inner.entries()

    def skip(self, path: str, reason: str) -> None:
        self.inner.skip(path, reason)

    def read(self, entry: Entry, offset: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
        return self.inner.read(entry, offset, frames)

    def load(self, entry: Entry, sample_rate: int | None = None) -> np.ndarray:
        target = sample_rate or self.sample_rate
        if target == self.cache.rate and (hit := self.cache.get(entry)) is not None:
            return hit
        return self.inner.load(entry, sample_rate)

    def span_length(self, entry: Entry, sample_rate: int) -> int:
        cached = self.cache.frames(entry) if sample_rate == self.cache.rate else None
        return cached if cached is not None else self.inner.span_length(entry, sample_rate)

    def load_span(self, entry: Entry, start: int, frames: int, sample_rate: int) -> np.ndarray:
        if sample_rate == self.cache.rate and (hit := self.cache.get(entry, start, frames)) is not None:
            return hit  # only the span is converted, not the whole utterance
        return self.inner.load_span(entry, start, frames, sample_rate)
