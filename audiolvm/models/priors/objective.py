"""The engine's step function for priors: batches from ``CodeWindowDataset`` -> the prior's loss."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class PriorObjective:
    """``(model, batch) -> {"loss", "bits_per_code"}``.

    ``batch`` holds ``codes : Long[B x N]``, ``mask : Bool[B x N]``, ``label : Long[B]`` and, for
    upsamplers, ``upper : Long[B x N / upsample]``. The model is called (not ``.loss``) so that DDP
    wrappers see a forward.
    """

    def __init__(self, use_labels: bool, use_upper: bool) -> None:
        self.use_labels, self.use_upper = use_labels, use_upper

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cond = {}
        if self.use_labels:
            cond["label"] = batch["label"]
        if self.use_upper:
            cond["upper"] = batch["upper"]
        return dict(model(batch["codes"], cond or None, batch["mask"]))
