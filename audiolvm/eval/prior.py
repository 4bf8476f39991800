"""Held-out likelihood of a code prior, in non-overlapping windows (each window scored on its own)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from audiolvm.data.codes import CodeItem, CodeStore
from audiolvm.models.priors.base import Prior


def item_windows(store: CodeStore, item: CodeItem, level: int, window: int, upper_level: int | None,
                 ratio: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(codes Long[W x window], mask Bool[W x window], upper Long[W x window / ratio] or None) for one item."""
    codes = torch.from_numpy(store.codes(item, level).astype("int64"))  # (N,)
    n_win = max(1, math.ceil(len(codes) / window))
    padded = torch.zeros(n_win * window, dtype=torch.long)
    padded[: len(codes)] = codes
    mask = torch.zeros(n_win * window, dtype=torch.bool)
    mask[: len(codes)] = True
    upper = None
    if upper_level is not None:
        up = torch.from_numpy(store.codes(item, upper_level).astype("int64"))
        upper = torch.zeros(n_win * window // ratio, dtype=torch.long)
        upper[: min(len(up), len(upper))] = up[: len(upper)]
        upper = upper.view(n_win, window // ratio)  # (W, window / ratio)
    return padded.view(n_win, window), mask.view(n_win, window), upper  # (W, window) each


@torch.no_grad()
def evaluate_prior(prior: Prior, store: CodeStore, level: int, window: int, split: str | None = "valid",
                   upper_level: int | None = None, labels: Sequence[str] = ()) -> dict[str, float]:
    """Mean NLL per code (nats and bits) over the items of ``split``, windows of ``window`` codes."""
    prior.eval()
    ratio = store.levels[upper_level].hop // store.levels[level].hop if upper_level is not None else 1
    total, count = 0.0, 0
    items = store.select(split)
    for item in items:
        codes, mask, upper = item_windows(store, item, level, window, upper_level, ratio)
        cond: dict[str, torch.Tensor] = {}
        if labels:
            cond["label"] = torch.full((len(codes),), labels.index(item.speaker) if item.speaker in labels else 0)
        if upper is not None:
            cond["upper"] = upper
        total -= float(prior.log_prob(codes, cond or None, mask).sum())
        count += int(mask.sum())
    nats = total / max(count, 1)
    return {"items": len(items), "codes": count, "nats_per_code": nats, "bits_per_code": nats / math.log(2)}
