"""Adversarial losses over the outputs of ``audiolvm.nn.discriminators``: hinge (EnCodec, DAC-style) and least
squares (LSGAN, HiFi-GAN) discriminator / generator losses, and EnCodec's normalised feature matching.

Each loss takes one logits tensor (any shape) per sub-discriminator, ``D_k``, ``k = 1..K``, and averages
per sub-discriminator means, ``(1/K) sum_k mean(...)``, so sub-discriminators with more patches do not weigh
more. From a discriminator output ``outs``: ``logits = [l for l, _ in outs]``, ``feats = [f for _, f in outs]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from audiolvm.core.errors import UsageError

Logits = Sequence[torch.Tensor]


def _mean_over(terms: list[torch.Tensor]) -> torch.Tensor:
    if not terms:
        raise UsageError("need at least one sub-discriminator")
    return torch.stack(terms).mean()


def hinge_d_loss(real: Logits, fake: Logits) -> torch.Tensor:
    """``(1/K) sum_k [mean(relu(1 - D_k(x))) + mean(relu(1 + D_k(x_hat)))]``; 0 once real >= 1, fake <= -1."""
    return _mean_over([F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True)])


def hinge_g_loss(fake: Logits) -> torch.Tensor:
    """``(1/K) sum_k mean(relu(1 - D_k(x_hat)))`` (EnCodec's generator hinge)."""
    return _mean_over([F.relu(1 - f).mean() for f in fake])


def ls_d_loss(real: Logits, fake: Logits) -> torch.Tensor:
    """``(1/K) sum_k [mean((1 - D_k(x))^2) + mean(D_k(x_hat)^2)]`` (least squares, HiFi-GAN)."""
    return _mean_over([(1 - r).square().mean() + f.square().mean() for r, f in zip(real, fake, strict=True)])


def ls_g_loss(fake: Logits) -> torch.Tensor:
    """``(1/K) sum_k mean((1 - D_k(x_hat))^2)`` (least squares, HiFi-GAN)."""
    return _mean_over([(1 - f).square().mean() for f in fake])


def feature_matching(
    real_feats: Sequence[Sequence[torch.Tensor]], fake_feats: Sequence[Sequence[torch.Tensor]], eps: float = 1e-8
) -> torch.Tensor:
    """EnCodec's relative L1 feature matching: for sub-discriminator ``k`` with layers ``l = 1..L_k``,
    ``(1/K) sum_k (1/L_k) sum_l mean(|r_kl - f_kl|) / (mean(|r_kl|) + eps)``. The real features are detached,
    so only the generator (through the fake features) gets gradients. Exactly 0 when fake equals real."""
    terms = []
    for reals, fakes in zip(real_feats, fake_feats, strict=True):
        if len(reals) != len(fakes) or not reals:
            raise UsageError(f"feature lists differ or are empty: {len(reals)} real vs {len(fakes)} fake layers")
        layers = []
        for r, f in zip(reals, fakes, strict=True):
            r = r.detach()
            layers.append((r - f).abs().mean() / (r.abs().mean() + eps))
        terms.append(torch.stack(layers).mean())
    return _mean_over(terms)


#: name -> (discriminator loss ``(real, fake) -> Tensor``, generator loss ``fake -> Tensor``)
ADVERSARIAL_LOSSES: dict[str, tuple[Callable[[Logits, Logits], torch.Tensor], Callable[[Logits], torch.Tensor]]] = {
    "hinge": (hinge_d_loss, hinge_g_loss),
    "ls": (ls_d_loss, ls_g_loss),
}
