"""Class conditioning by concatenation: one-hot labels appended as features or broadcast channels.

Used by the conditional image VAEs (``q(z|x, y)``, ``p(x|z, y)``): ``cond`` is a float
``Tensor[B x K]`` (a one-hot label, or class probabilities), so a semi-supervised model can pass
either observed labels or enumerated ones through the same layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiolvm.core.errors import UsageError


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``labels : LongTensor[B]`` in ``[0, num_classes)`` -> float ``Tensor[B x num_classes]``."""
    if labels.dim() != 1 or labels.is_floating_point():
        raise UsageError(f"one_hot: labels must be a LongTensor[B] of class ids, got {labels.dtype} "
                         f"of shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(f"one_hot: labels must lie in [0, {num_classes}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]; is num_classes right for this data set?")
    return F.one_hot(labels.long(), num_classes).to(dtype)


def concat_condition(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """Append ``cond : Tensor[B x K]`` to ``x : Tensor[B x C x *S]`` -> ``Tensor[B x (C+K) x *S]``.

    The condition is broadcast over the trailing (spatial) dims; ``cond=None`` returns ``x``.
    """
    if cond is None:
        return x
    if cond.dim() != 2 or cond.shape[0] != x.shape[0]:
        raise UsageError(f"concat_condition: cond must be Tensor[B x K] with B={x.shape[0]}, got shape "
                         f"{tuple(cond.shape)}; pass one (one-hot) vector per item")
    spatial = x.shape[2:]
    cond = cond.to(x.dtype).view(*cond.shape, *([1] * len(spatial))).expand(*cond.shape, *spatial)  # (B, K, *S)
    return torch.cat([x, cond], dim=1)


def check_condition(cond: torch.Tensor | None, cond_dim: int, owner: str) -> None:
    """Raise unless ``cond`` is given exactly when ``cond_dim > 0`` and has ``cond_dim`` features."""
    given = 0 if cond is None else cond.shape[-1]
    if given != cond_dim:
        raise UsageError(f"{owner} was built with cond_dim={cond_dim} but got a condition of size {given}; "
                         "pass cond (one-hot labels) exactly when the block is conditional")
