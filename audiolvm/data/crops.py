"""Training data from a corpus: fixed-length random crops, full utterances, and an epoch sampler.

Randomness never depends on worker order: the crop offset of item ``i`` in epoch ``e`` comes from
``derived_rng(seed, e, i)`` and the sampler's permutation from ``(seed, e)`` only, so a resumed or
re-sharded run sees the same data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolvm.core.audio import SILENCE_DBFS, AudioError, rms_dbfs
from audiolvm.core.errors import UsageError
from audiolvm.core.seed import derived_rng
from audiolvm.data.entry import CorpusError, Entry
from audiolvm.data.pitch import PitchTable
from audiolvm.data.readers.base import CorpusReader

LOG = logging.getLogger("audiolvm.data")


class _ReaderDataset(Dataset):
    """Shared parts: entries, the sorted speaker list, and skipping of files that fail to decode."""

    def __init__(self, reader: CorpusReader, entries: Sequence[Entry],
                 speakers: Sequence[str] | None) -> None:
        self.reader = reader
        self.entries = list(entries)
        self.speakers = sorted({e.speaker for e in self.entries}) if speakers is None else list(speakers)
        self._speaker_index = {s: k for k, s in enumerate(self.speakers)}
        self.skipped: Counter[str] = Counter()
        self.skipped_files: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def speaker_index(self, speaker: str) -> int:
        """Index into ``self.speakers``; -1 for a speaker not in the list (e.g. held-out speakers)."""
        return self._speaker_index.get(speaker, -1)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Item ``i``; if its file fails to decode, the next entry (i+1 mod n), deterministically."""
        n = len(self.entries)
        last: AudioError | None = None
        for k in range(n):
            j = (i + k) % n
            try:
                return self._item(j)
            except AudioError as err:
                last = err
                self._skip(self.entries[j].path, err.reason)
        raise CorpusError(f"{type(self).__name__}: all {n} entries failed to decode (last: {last}); "
                          "check the corpus or delete its .audiolvm_manifest.*.jsonl and rescan")

    def _skip(self, path: str, reason: str) -> None:
        if (path, reason) not in self.skipped_files:
            self.skipped[reason.split(" (")[0]] += 1
            self.skipped_files.append((path, reason))
        LOG.warning("skipping %s at load time: %s", path, reason)

    def _item(self, j: int) -> dict[str, Any]:
        raise NotImplementedError


class CropDataset(_ReaderDataset):
    """Item ``i`` is a fixed-length crop of ``entries[i]``.

    Args:
        reader: the reader the entries came from (it loads them).
        entries: entries to crop (those shorter than ``min_duration`` seconds are dropped).
        crop_samples: crop length, in samples at ``sample_rate``.
        sample_rate: output rate; files at another rate are loaded whole and resampled, files at
            this rate are read as a window only.
        seed: offsets come from ``derived_rng(seed, epoch, i)``.
        random: False gives the deterministic center crop (validation).
        speakers: fixed speaker list (e.g. the train set's, for a validation set); default sorted.
        pitch: the entries' cached F0 tracks (:class:`PitchTable`, at ``sample_rate``), for pitch-aware
            decoders: items then also hold the crop's ``"f0"`` and ``"voiced"``, ``FloatTensor[n]`` with
            ``n = crop_samples // hop + 1`` (see :meth:`PitchTable.crop`).

    Returns of ``ds[i]``: ``{"audio": FloatTensor[1 x crop_samples], "length": valid samples,
    "speaker": speaker index, "index": entry index}``. Shorter files are zero-padded at the end.
    A file that fails to decode is skipped for the next entry, whose index is returned. A random crop quieter
    than :data:`~audiolvm.core.audio.SILENCE_DBFS` (a pause) is drawn again, up to ``REDRAWS`` times, from
    ``derived_rng(seed, epoch, i, attempt)``: still a function of (seed, epoch, index), so resume stays exact.
    """

    REDRAWS = 16

    def __init__(self, reader: CorpusReader, entries: Sequence[Entry], crop_samples: int, sample_rate: int,
                 seed: int = 0, min_duration: float = 0.0, random: bool = True,
                 speakers: Sequence[str] | None = None, pitch: PitchTable | None = None) -> None:
        if crop_samples <= 0 or sample_rate <= 0:
            raise UsageError(f"CropDataset: crop_samples={crop_samples} and sample_rate={sample_rate} "
                             "must be positive")
        kept = [e for e in entries if e.duration >= min_duration]
        if not kept:
            raise CorpusError(f"CropDataset: none of {len(entries)} entries is at least {min_duration} s "
                              "long (field min_duration); lower min_duration or check the corpus")
        super().__init__(reader, kept, speakers)
        self.crop_samples, self.sample_rate = int(crop_samples), int(sample_rate)
        self.seed, self.random, self.epoch = seed, random, 0
        self.pitch = pitch

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (call in every worker process; DataLoader copies datasets)."""
        self.epoch = int(epoch)

    def offset(self, j: int, total: int, attempt: int = 0) -> int:
        """Crop start for entry ``j`` of ``total`` samples: random in [0, total - crop] or centered.
        ``attempt`` > 0 draws again (after a silent crop) from its own stream."""
        if total <= self.crop_samples:
            return 0
        if not self.random:
            return (total - self.crop_samples) // 2
        keys = (self.seed, self.epoch, j) + ((attempt,) if attempt else ())
        return int(derived_rng(*keys).integers(0, total - self.crop_samples + 1))

    def _crop(self, j: int) -> tuple[np.ndarray, int]:
        """``(wave (<= crop,), start)``: the crop of entry ``j``, drawn again while it is silent."""
        entry, crop, rate = self.entries[j], self.crop_samples, self.sample_rate
        total = self.reader.span_length(entry, rate)
        for attempt in range(self.REDRAWS if self.random and total > crop else 1):
            start = self.offset(j, total, attempt)
            wave = self.reader.load_span(entry, start, crop, rate)
            if rms_dbfs(wave) >= SILENCE_DBFS:
                break
        return wave, start

    def _item(self, j: int) -> dict[str, Any]:
        entry, crop = self.entries[j], self.crop_samples
        wave, start = self._crop(j)
        length = min(len(wave), crop)
        audio = torch.zeros(1, crop)  # (1, crop)
        audio[0, :length] = torch.from_numpy(np.ascontiguousarray(wave[:length], dtype=np.float32))
        item = {"audio": audio, "length": length, "speaker": self.speaker_index(entry.speaker), "index": j}
        if self.pitch is not None:
            f0, voiced = self.pitch.crop(entry, start, crop)  # (n,) each
            item |= {"f0": torch.from_numpy(f0), "voiced": torch.from_numpy(voiced)}
        return item


class UtteranceDataset(_ReaderDataset):
    """Whole utterances at ``sample_rate``, for validation and reconstruction (batch size 1).

    ``ds[i]`` is ``{"audio": FloatTensor[1 x T], "length": T, "speaker": index, "index": i,
    "utterance": id, "path": path}``; bad files are skipped as in :class:`CropDataset`.
    """

    def __init__(self, reader: CorpusReader, entries: Sequence[Entry], sample_rate: int,
                 speakers: Sequence[str] | None = None) -> None:
        if not entries:
            raise CorpusError("UtteranceDataset: 0 entries (field entries); pass a non-empty split")
        super().__init__(reader, entries, speakers)
        self.sample_rate = int(sample_rate)

    def _item(self, j: int) -> dict[str, Any]:
        entry = self.entries[j]
        wave = self.reader.load(entry, self.sample_rate)  # (T,)
        return {"audio": torch.from_numpy(wave).unsqueeze(0), "length": len(wave),  # (1, T)
                "speaker": self.speaker_index(entry.speaker), "index": j,
                "utterance": entry.utterance, "path": entry.path}
