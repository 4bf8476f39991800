"""Validation: the means of the step function's entries over the first held-out batches, gathered from every
process and copied to the host once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from accelerate import Accelerator
from torch import nn


@torch.no_grad()
def validate(accelerator: Accelerator, model: nn.Module, loader: Iterable[Mapping[str, torch.Tensor]],
             batches: int, evaluate: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]],
             ) -> dict[str, float]:
    """The mean of each entry ``evaluate`` returns over the first ``batches`` batches of ``loader``, with the
    prepared ``model`` in eval mode meanwhile."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    n = 0
    for i, batch in enumerate(loader):
        if i >= batches:
            break
        out = evaluate(batch)
        for k, v in out.items():
            value = accelerator.gather_for_metrics(v.detach().float().reshape(1)).mean()
            sums[k] = sums[k] + value if k in sums else value
        n += 1
    model.train()
    keys = sorted(sums)
    totals = torch.stack([sums[k] for k in keys]).tolist() if keys else []  # one copy to the host
    return {k: v / max(n, 1) for k, v in zip(keys, totals, strict=True)}
