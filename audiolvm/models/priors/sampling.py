"""Sampling from next-code logits: temperature, top-k and nucleus (top-p) filtering."""

from __future__ import annotations

import torch

from audiolvm.core.errors import UsageError


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set excluded candidates to ``-inf``; ``logits : Tensor[... x K]``.

    top_k keeps the k largest logits (exactly k: ties are broken by index order). top_p keeps the
    smallest set of most probable candidates whose total probability is at least ``top_p``.
    """
    k = logits.shape[-1]
    if top_k is not None:
        if not 1 <= top_k:
            raise UsageError(f"top_k must be >= 1, got {top_k}")
        if top_k < k:
            keep = torch.topk(logits, top_k, dim=-1).indices
            mask = torch.ones_like(logits, dtype=torch.bool).scatter_(-1, keep, False)
            logits = logits.masked_fill(mask, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise UsageError(f"top_p must be in (0, 1], got {top_p}")
        if top_p == 1.0:
            return logits  # everything is kept (a float cumsum could reach 1.0 early and drop tiny tails)
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits.double(), dim=-1)
        mass_before = probs.cumsum(-1) - probs  # (..., K): probability of the candidates ranked above
        drop_sorted = mass_before >= top_p  # keep until the kept mass first reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one code per row of ``logits : Tensor[B x K]`` -> ``LongTensor[B]``.

    ``temperature == 0`` is greedy decoding. Sampling uses only ``generator`` (deterministic under a seed).
    """
    if temperature < 0:
        raise UsageError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
