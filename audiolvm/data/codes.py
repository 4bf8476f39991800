"""Discrete codes on disk: sharded, memory-mappable arrays per level plus an index.

Layout of a code folder::

    meta.json                      levels (hop, num_codes, dtype), sample rate, source checkpoint
    items.jsonl                    one line per item: id, speaker, path, split, samples, and per
                                   level [shard, offset, length]
    level0/shard_0000.npy ...      1-D integer arrays, items concatenated; ``np.load(mmap_mode="r")``

Priors read codes from here without touching audio again. Writes go to temporary names and are
renamed at the end, and ``items.jsonl`` is written last, so an interrupted encode leaves no index
pointing at missing data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import atomic_write_json, atomic_write_text, read_json

FORMAT_VERSION = 1


@dataclass
class LevelInfo:
    level: int
    hop: int
    num_codes: int

    @property
    def dtype(self) -> str:
        return "int16" if self.num_codes <= np.iinfo(np.int16).max else "int32"


@dataclass
class CodeItem:
    """One encoded utterance or track. ``spans[l] = (shard, offset, length)`` of level ``l``."""

    id: str
    speaker: str = ""
    path: str = ""
    split: str = ""
    samples: int = 0
    spans: list[tuple[int, int, int]] = field(default_factory=list)


class CodeWriter:
    """Append items' per-level codes; call :meth:`close` to publish (or use as a context manager)."""

    def __init__(self, root: str | Path, levels: Sequence[LevelInfo], sample_rate: int,
                 shard_frames: int = 4_000_000, extra: dict | None = None) -> None:
        self.root, self.levels, self.sample_rate = Path(root), list(levels), sample_rate
        self.shard_frames, self.extra = shard_frames, extra or {}
        self.items: list[CodeItem] = []
        self._pending: list[list[np.ndarray]] = [[] for _ in self.levels]
        self._shard = [0] * len(self.levels)
        self._filled = [0] * len(self.levels)
        (self.root / "items.jsonl").unlink(missing_ok=True)  # invalid until close()

    def add(self, item: CodeItem, codes: Sequence[np.ndarray]) -> None:
        """``codes[l]``: 1-D integer array of level ``l``'s codes for this item."""
        if len(codes) != len(self.levels):
            raise UsageError(f"item {item.id}: {len(codes)} code arrays for {len(self.levels)} levels")
        item.spans = []
        for lv, arr in zip(self.levels, codes, strict=True):
            arr = np.asarray(arr).reshape(-1)
            if arr.size and (arr.min() < 0 or arr.max() >= lv.num_codes):
                raise UsageError(f"item {item.id}: level {lv.level} codes outside [0, {lv.num_codes})")
            if self._filled[lv.level] and self._filled[lv.level] + arr.size > self.shard_frames:
                self._flush(lv.level)
            item.spans.append((self._shard[lv.level], self._filled[lv.level], int(arr.size)))
            self._pending[lv.level].append(arr.astype(lv.dtype))
            self._filled[lv.level] += arr.size
        self.items.append(item)

    def _flush(self, level: int) -> None:
        path = self.root / f"level{level}" / f"shard_{self._shard[level]:04d}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.concatenate(self._pending[level]) if self._pending[level] else np.zeros(0, self.levels[level].dtype)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, data)
        os.replace(tmp, path)
        self._pending[level], self._filled[level] = [], 0
        self._shard[level] += 1

    def close(self) -> Path:
        for lv in self.levels:
            if self._pending[lv.level] or self._shard[lv.level] == 0:
                self._flush(lv.level)
        meta = {"format_version": FORMAT_VERSION, "sample_rate": self.sample_rate, "items": len(self.items),
                "levels": [asdict(lv) | {"dtype": lv.dtype, "shards": self._shard[lv.level]} for lv in self.levels],
                **self.extra}
        atomic_write_json(self.root / "meta.json", meta)
        lines = [json.dumps(asdict(item)) for item in self.items]
        atomic_write_text(self.root / "items.jsonl", "\n".join(lines) + ("\n" if lines else ""))
        return self.root

    def __enter__(self) -> CodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.close()


class CodeStore:
    """Read a code folder. Shards are memory-mapped on first use; nothing is loaded eagerly."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        meta_path, items_path = self.root / "meta.json", self.root / "items.jsonl"
        if not meta_path.is_file() or not items_path.is_file():
            raise MissingFileError(
                f"{self.root}: not a complete code folder (needs meta.json and items.jsonl); "
                "write one with 'audiolvm encode --checkpoint C --data D --out DIR'"
            )
        self.meta = read_json(meta_path, "re-encode with 'audiolvm encode'")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise UsageError(f"{meta_path}: format_version {self.meta.get('format_version')}, "
                             f"expected {FORMAT_VERSION}; re-encode with this version")
        self.levels = [LevelInfo(lv["level"], lv["hop"], lv["num_codes"]) for lv in self.meta["levels"]]
        self.items = [self._item(line) for line in items_path.read_text().splitlines() if line.strip()]
        self._shards: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _item(line: str) -> CodeItem:
        data = json.loads(line)
        data["spans"] = [tuple(s) for s in data["spans"]]
        return CodeItem(**data)

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    def __len__(self) -> int:
        return len(self.items)

    def shard(self, level: int, index: int) -> np.ndarray:
        key = (level, index)
        if key not in self._shards:
            path = self.root / f"level{level}" / f"shard_{index:04d}.npy"
            self._shards[key] = np.load(path, mmap_mode="r")
        return self._shards[key]

    def codes(self, item: int | CodeItem, level: int) -> np.ndarray:
        """Level ``level``'s codes of an item (a read-only memory-mapped view)."""
        it = self.items[item] if isinstance(item, int) else item
        shard, offset, length = it.spans[level]
        return self.shard(level, shard)[offset : offset + length]

    def select(self, split: str | None = None) -> list[CodeItem]:
        return [it for it in self.items if split is None or it.split == split]


class CodeWindowDataset:
    """Fixed-length windows of one level's codes, for prior training (map-style, torch-compatible).

    Item ``i`` of epoch ``e`` is a window of ``window`` codes from item ``i`` of the store (in
    ``split``), at an offset drawn from ``(seed, e, i)`` only; shorter items are right-padded with code 0
    and ``mask`` marks real codes. With ``upper_level`` set, the aligned codes of that level come along
    (``window * hop_lower / hop_upper`` of them, the window offset rounded to whole upper frames).
    ``label`` is the index of the item's speaker (or track group) in ``labels``.
    """

    def __init__(self, store: CodeStore, level: int, window: int, split: str | None = None, seed: int = 0,
                 upper_level: int | None = None, labels: Sequence[str] | None = None) -> None:
        self.store, self.level, self.window, self.seed, self.epoch = store, level, window, seed, 0
        self.items = store.select(split)
        if not self.items:
            raise UsageError(f"{store.root}: no items in split {split!r}")
        self.upper_level = upper_level
        self.ratio = 1
        if upper_level is not None:
            lower, upper = store.levels[level].hop, store.levels[upper_level].hop
            if upper % lower or upper <= lower:
                raise UsageError(f"upper level hop {upper} must be a multiple of level {level}'s hop {lower}")
            self.ratio = upper // lower
            if window % self.ratio:
                raise UsageError(f"window {window} must be a multiple of the hop ratio {self.ratio}")
        self.labels = list(labels) if labels is not None else sorted({it.speaker for it in store.items})
        self._label_index = {name: i for i, name in enumerate(self.labels)}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _offset(self, i: int, length: int) -> int:
        slots = (length - self.window) // self.ratio  # offsets in whole upper frames
        if slots <= 0:
            return 0
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, i])
        return int(rng.integers(0, slots + 1)) * self.ratio

    def _window(self, item: CodeItem, level: int, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        codes = np.asarray(self.store.codes(item, level)[start : start + size], dtype=np.int64)
        mask = np.zeros(size, dtype=bool)
        mask[: len(codes)] = True
        return np.pad(codes, (0, size - len(codes))), mask

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        start = self._offset(i, item.spans[self.level][2])
        codes, mask = self._window(item, self.level, start, self.window)
        out = {"codes": torch.from_numpy(codes), "mask": torch.from_numpy(mask),
               "label": torch.tensor(self._label_index.get(item.speaker, -1))}
        if self.upper_level is not None:
            upper, _ = self._window(item, self.upper_level, start // self.ratio, self.window // self.ratio)
            out["upper"] = torch.from_numpy(upper)
        return out


class CodeMapDataset:
    """Whole code maps held in memory (an image VQ-VAE's codes of a small image set), for 2-D priors.

    Item ``i`` is ``{"codes": Long[H x W], "mask": Bool[H x W] (all True), "label": Long[]}``, the same
    keys as :class:`CodeWindowDataset` so :class:`~audiolvm.models.priors.objective.PriorObjective` reads
    both. ``labels`` are class ids (-1 = unknown).
    """

    def __init__(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        if codes.dim() != 3 or codes.is_floating_point():
            raise UsageError(f"CodeMapDataset needs integer code maps LongTensor[N x H x W], got {codes.dtype} "
                             f"of shape {tuple(codes.shape)}")
        self.codes = codes.long()
        self.labels = torch.full((len(codes),), -1, dtype=torch.long) if labels is None else labels.long()
        if self.labels.shape != (len(codes),):
            raise UsageError(f"CodeMapDataset: {len(codes)} code maps but labels of shape {tuple(self.labels.shape)}")
        self._mask = torch.ones(codes.shape[1:], dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> dict:
        return {"codes": self.codes[i], "mask": self._mask, "label": self.labels[i]}
