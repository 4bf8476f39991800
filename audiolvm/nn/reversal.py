"""Gradient reversal (Ganin & Lempitsky 2015): the identity forward, ``-scale`` times the gradient backward.

A classifier placed after it learns to predict its target from the features, while whatever produced the
features receives the classifier's gradient reversed, i.e. is pushed to make the target unpredictable (one
optimizer, one backward pass: no separate adversary step)."""

from __future__ import annotations

from typing import Any

import torch

from audiolvm.core.errors import UsageError


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:  # ctx: autograd's context object
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``x`` unchanged; in backward the gradient reaching ``x`` is multiplied by ``-scale``."""
    if scale < 0:
        raise UsageError(f"gradient reversal scale must be >= 0, got {scale}")
    return _Reverse.apply(x, scale)
