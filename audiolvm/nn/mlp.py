"""Fully connected encoder and decoder blocks for small images (or any fixed-shape tensors).

``MLPEncoder`` flattens ``Tensor[B x *shape]`` and maps it to ``Tensor[B x out_features]`` (for a
Gaussian bottleneck: ``[mean | logvar]``); ``MLPDecoder`` maps ``Tensor[B x in_features]`` back to
``Tensor[B x *shape]`` (for a likelihood: its parameter channels). Both may take a class condition
``cond : Tensor[B x K]``, concatenated to their input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.nn.conditioning import check_condition, concat_condition

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """``Linear -> act -> ... -> Linear`` through ``sizes`` (no activation after the last layer)."""
    if len(sizes) < 2 or min(sizes) < 1:
        raise UsageError(f"mlp needs at least an input and an output size, all >= 1; got {list(sizes)}")
    if activation not in _ACTIVATIONS:
        raise UsageError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """``x : Tensor[B x *in_shape]`` (+ ``cond : Tensor[B x cond_dim]``) -> ``Tensor[B x out_features]``."""

    def __init__(self, in_shape: Sequence[int], out_features: int, hidden: Sequence[int] = (512, 256),
                 cond_dim: int = 0, activation: str = "relu") -> None:
        super().__init__()
        self.in_shape, self.cond_dim = tuple(in_shape), cond_dim
        self.net = mlp([math.prod(self.in_shape) + cond_dim, *hidden, out_features], activation)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.in_shape:
            raise UsageError(f"MLPEncoder expects inputs of shape [B x {' x '.join(map(str, self.in_shape))}], "
                             f"got {tuple(x.shape)}; set in_shape to the data's shape")
        check_condition(cond, self.cond_dim, "MLPEncoder")
        return self.net(concat_condition(x.flatten(1), cond))  # (B, out)


class MLPDecoder(nn.Module):
    """``z : Tensor[B x in_features]`` (+ ``cond : Tensor[B x cond_dim]``) -> ``Tensor[B x *out_shape]``."""

    def __init__(self, in_features: int, out_shape: Sequence[int], hidden: Sequence[int] = (256, 512),
                 cond_dim: int = 0, activation: str = "relu") -> None:
        super().__init__()
        self.out_shape, self.cond_dim = tuple(out_shape), cond_dim
        self.net = mlp([in_features + cond_dim, *hidden, math.prod(self.out_shape)], activation)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        check_condition(cond, self.cond_dim, "MLPDecoder")
        out = self.net(concat_condition(z.flatten(1), cond))  # (B, prod(out_shape))
        return out.view(z.shape[0], *self.out_shape)  # (B, *out_shape)

