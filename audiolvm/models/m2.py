"""M2, the semi-supervised VAE of Kingma et al. 2014 ("Semi-Supervised Learning with Deep Generative Models").

Generative model ``p(y) p(z) p(x|y, z)`` with a uniform ``p(y)`` over K classes and ``p(z) = N(0, I)``;
inference ``q(y|x)`` (a classifier) and ``q(z|x, y)``. Per labelled item the bound is
``L(x, y) = E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)]``; per unlabelled item y is
enumerated: ``U(x) = sum_y q(y|x) L(x, y) + H(q(y|x))``. The classifier is also trained on the labelled
items with weight alpha: ``loss = -(sum L + sum U) / B + alpha * CE``.

Unlabelled items carry ``label = -1``. One forward runs the conditional VAE once over the labelled items
and the K copies of each unlabelled item (class-major: row ``c * U + u`` is unlabelled item u with class c).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.core.errors import UsageError
from audiolvm.losses.likelihoods import Likelihood
from audiolvm.models.vae import ConditionalVAE, VAEOutput
from audiolvm.models.vae_objective import item_bound


@dataclass
class M2Output:
    """``vae``: the conditional VAE over ``L + K*U`` rows (labelled first, then the enumeration);
    ``logits``: ``q(y|x)`` logits ``Tensor[B x K]``; ``labelled``: ``Bool[B]``; ``labels``: ``Long[L]``."""

    vae: VAEOutput
    logits: torch.Tensor
    labelled: torch.Tensor
    labels: torch.Tensor


class M2(ConditionalVAE):
    """Semi-supervised VAE: a :class:`ConditionalVAE` plus a classifier ``q(y|x)``.

    Args:
        encoder, bottleneck, decoder, likelihood, latent_shape, num_classes: as in :class:`ConditionalVAE`
            (encoder and decoder built with ``cond_dim=num_classes``).
        classifier: ``x : Tensor[B x C x *S]`` -> logits ``Tensor[B x num_classes]``.
    """

    def __init__(self, encoder: nn.Module, bottleneck: GaussianBottleneck, decoder: nn.Module, likelihood: Likelihood,
                 latent_shape: Sequence[int], num_classes: int, classifier: nn.Module) -> None:
        super().__init__(encoder, bottleneck, decoder, likelihood, latent_shape, num_classes)
        self.classifier = classifier

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """``q(y|x)`` logits, ``Tensor[B x K]``."""
        return self.classifier(x)

    def forward_semi(self, x: torch.Tensor, label: torch.Tensor | None = None, sample: bool | None = None) -> M2Output:
        """The semi-supervised pass. ``label : LongTensor[B]`` with -1 for unlabelled items (None: all unlabelled)."""
        batch, k = x.shape[0], self.num_classes
        if label is None:
            label = torch.full((batch,), -1, dtype=torch.long, device=x.device)
        if label.shape != (batch,):
            raise UsageError(f"M2: label must be LongTensor[{batch}] (-1 = unlabelled), got shape {tuple(label.shape)}")
        labelled = label >= 0
        x_l, y_l, x_u = x[labelled], label[labelled], x[~labelled]  # (L, ...), (L,), (U, ...)
        y_enum = torch.arange(k, device=x.device).repeat_interleave(x_u.shape[0])  # (K*U,) class-major
        x_all = torch.cat([x_l, x_u.repeat(k, *([1] * (x.dim() - 1)))])  # (L + K*U, C, *S)
        vae = super().forward(x_all, torch.cat([y_l, y_enum]), sample)
        return M2Output(vae=vae, logits=self.classify(x), labelled=labelled, labels=y_l)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None,  # type: ignore[override]
                sample: bool | None = None, semi: bool = False) -> VAEOutput | M2Output:
        """``semi=True``: :meth:`forward_semi`; otherwise the conditional VAE (so ``reconstruct`` works)."""
        if semi:
            return self.forward_semi(x, label, sample)
        return super().forward(x, label, sample)


def m2_bounds(out: M2Output, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item bounds: ``L(x, y)`` of the labelled items ``Tensor[L]`` and ``U(x)`` of the unlabelled ``Tensor[U]``."""
    bound = item_bound(out.vae) - math.log(num_classes)  # (L + K*U,), with log p(y) = -log K
    n_lab = out.labels.shape[0]
    labelled_bound = bound[:n_lab]
    n_unl = out.logits.shape[0] - n_lab
    enum = bound[n_lab:].view(num_classes, n_unl).t()  # (U, K)
    log_q_y = torch.log_softmax(out.logits[~out.labelled], dim=1)  # (U, K)
    q_y = log_q_y.exp()
    unlabelled_bound = (q_y * (enum - log_q_y)).sum(dim=1)  # sum_y q(y|x) L(x, y) + H(q(y|x))
    return labelled_bound, unlabelled_bound


class M2Objective:
    """``(model, batch) -> {"loss", "labelled/elbo", "unlabelled/bound", "ce", "accuracy", "labelled"}``.

    ``batch[label_key]`` holds class ids with -1 for unlabelled items. ``accuracy`` of ``q(y|x)`` is
    over the labelled items of the batch (0 when none are).
    """

    def __init__(self, alpha: float = 1.0, image_key: str = "image", label_key: str = "label") -> None:
        if alpha < 0:
            raise UsageError(f"M2Objective: alpha must be >= 0, got {alpha}")
        self.alpha, self.image_key, self.label_key = alpha, image_key, label_key

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, label = batch[self.image_key], batch[self.label_key]
        out: M2Output = model(x, label, sample=True, semi=True)
        num_classes = out.logits.shape[1]
        labelled_bound, unlabelled_bound = m2_bounds(out, num_classes)
        loss = -(labelled_bound.sum() + unlabelled_bound.sum()) / x.shape[0]
        logits_l = out.logits[out.labelled]
        zero = out.logits.new_zeros(())
        ce = F.cross_entropy(logits_l, out.labels) if out.labels.numel() else zero
        accuracy = (logits_l.argmax(1) == out.labels).float().mean() if out.labels.numel() else zero
        return {
            "loss": loss + self.alpha * ce,
            "labelled/elbo": labelled_bound.detach().mean() if labelled_bound.numel() else zero,
            "unlabelled/bound": unlabelled_bound.detach().mean() if unlabelled_bound.numel() else zero,
            "ce": ce.detach(),
            "accuracy": accuracy.detach(),
            "labelled": out.labelled.float().mean(),
        }
