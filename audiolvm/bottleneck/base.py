"""The bottleneck interface shared by every autoencoder in audiolvm.

A bottleneck maps encoder features ``x : Tensor[B x D x *S]`` (channels first, any number of
spatial/temporal dims) to a :class:`BottleneckResult`. VQ (audio and image VQ-VAEs), Gaussian
(VAE / beta-VAE), importance-weighted Gaussian (IWAE) and identity (plain autoencoder) all
return the same result type, so ``Autoencoder(encoder, bottleneck, decoder)`` works for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class BottleneckResult:
    """What a bottleneck returns.

    Attributes:
        z: the representation passed to the decoder, same layout as the input ``Tensor[B x D x *S]``
            (for k-sample bottlenecks, ``Tensor[(k*B) x D x *S]``).
        codes: discrete indices ``LongTensor[B x *S]`` for quantizers, else None.
        losses: named, *unweighted* loss terms (scalars) to be weighted by the model's config.
        metrics: named scalar diagnostics (not differentiated), e.g. perplexity.
    """

    z: torch.Tensor
    codes: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class Bottleneck(nn.Module):
    """Base class. Subclasses implement ``forward(x) -> BottleneckResult``.

    Discrete bottlenecks also implement ``embed(codes)`` (codes -> vectors, channels first).
    """

    #: whether ``codes`` are produced (and ``embed`` is available)
    discrete: bool = False
    #: the codebook size K; set by discrete bottlenecks only (declared here for the type checker)
    num_codes: int

    def forward(self, x: torch.Tensor) -> BottleneckResult:  # pragma: no cover - interface
        raise NotImplementedError

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is continuous and has no codes to embed")


class IdentityBottleneck(Bottleneck):
    """Passes features through unchanged: turns an autoencoder into a plain (deterministic) AE."""

    def forward(self, x: torch.Tensor) -> BottleneckResult:
        return BottleneckResult(z=x)
