"""Codebook usage over a whole corpus (not just one batch)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass
class CodebookUsage:
    num_codes: int
    counts: torch.Tensor  # (K,) int64: how often each code was chosen

    @property
    def used(self) -> int:
        return int((self.counts > 0).sum())

    @property
    def used_frac(self) -> float:
        return self.used / self.num_codes

    @property
    def perplexity(self) -> float:
        p = self.counts.double() / self.counts.sum().clamp_min(1)
        return float(torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum()))

    def as_dict(self) -> dict[str, float]:
        return {"codes": self.num_codes, "used": self.used, "used_frac": self.used_frac,
                "perplexity": self.perplexity, "frames": int(self.counts.sum())}


def codebook_usage(codes: Iterable[torch.Tensor], num_codes: int) -> CodebookUsage:
    """Accumulate code counts over an iterable of ``LongTensor[...]`` of any shape."""
    counts = torch.zeros(num_codes, dtype=torch.long)
    for c in codes:
        counts += torch.bincount(c.reshape(-1).cpu(), minlength=num_codes)
    return CodebookUsage(num_codes, counts)
