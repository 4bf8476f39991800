"""Data order that depends only on (seed, epoch): the basis of exact resume."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from audiolvm.core.errors import UsageError


class EpochSampler(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Every process computes the same order; Accelerate then shards the batches across processes.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        if n <= 0:
            raise UsageError(f"EpochSampler: n={n} must be positive; is the dataset empty?")
        self.n, self.seed, self.shuffle, self.epoch = int(n), int(seed), shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        seed = (self.seed * 1_000_003 + self.epoch) & 0xFFFF_FFFF_FFFF_FFFF  # manual_seed's range
        gen = torch.Generator().manual_seed(seed)
        return iter(torch.randperm(self.n, generator=gen).tolist())
