"""Sample-domain reconstruction losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiolvm.core.errors import UsageError


def waveform_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean L1 or L2 distance between waveforms of equal shape."""
    if kind == "l1":
        return F.l1_loss(pred.float(), target.float())
    if kind == "l2":
        return F.mse_loss(pred.float(), target.float())
    raise UsageError(f"waveform loss kind {kind!r} is unknown; use 'l1' or 'l2'")
