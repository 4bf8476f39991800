"""Disentanglement metrics on a ground-truth factor source: MIG and the FactorVAE score.

Both take ``represent(images: Tensor[N x C x H x W]) -> Tensor[N x D]`` and a :class:`FactorSource`
(``factor_sizes``, ``sample_factors(num, rng)``, ``images_of(factors)``; e.g.
:class:`audiolvm.data.sprites.DSpritesStyle`), so they know no model class. ``represent`` is called
under ``torch.no_grad`` on batches of at most ``batch_size`` images.

Pinned settings (the defaults follow disentanglement_lib's study configurations, Locatello et al. 2019):

- **Representation**: whatever ``represent`` returns, never re-sampled here. Pass the encoder's posterior
  *mean* (disentanglement_lib's "mean" representation), not a sampled z.
- **Randomness**: each metric draws every factor tuple and every choice from ``np.random.default_rng(seed)``
  (seed 0), so a score is a function of (represent, source, settings, seed).
- **MIG** (Chen et al. 2018, discretised estimator): ``num_samples=10000`` factor tuples drawn uniformly;
  each latent is cut into ``bins=20`` equal-width bins between its min and max over those samples; plug-in
  mutual information (nats) between every binned latent and every factor class; per factor, the gap
  between the largest and second-largest MI divided by the factor's entropy; the mean over factors.
  With fewer than 2 latents the gap is the largest MI. Factors with more classes than ``bins`` cannot
  reach 1 even for a perfect code (e.g. 32 positions in 20 bins).
- **FactorVAE score** (Kim & Mnih 2018): the std of each latent over ``num_variance_estimate=10000``
  samples; latents with std < ``prune_std=0.05`` are pruned (collapsed to the prior). One vote: choose a
  factor k uniformly, draw ``votes_batch=64`` (L) tuples, set factor k of all to the first one's, and vote
  (k, argmin over active latents of variance / global variance), variances with ddof=1. The majority-vote
  classifier maps each latent to its most-voted factor (ties to the lower index), trained on
  ``num_train=10000`` votes and scored on ``num_eval=5000`` fresh votes: ``score`` is that held-out
  accuracy. A random code scores about 1 / num_factors (the expected accuracy of a classifier that ignores
  the latent). Unlike disentanglement_lib, the argmin over active latents is mapped back to the latent's
  own index. With no active latent the score is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from audiolvm.core.errors import UsageError

Represent = Callable[[torch.Tensor], torch.Tensor]


class FactorSource(Protocol):
    """Ground-truth data: factor classes ``[N x F]`` with ``F = len(factor_sizes)``, and their images."""

    factor_sizes: Sequence[int]

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray: ...

    def images_of(self, factors: np.ndarray) -> torch.Tensor: ...


@torch.no_grad()
def represent_factors(represent: Represent, source: FactorSource, factors: np.ndarray,
                      batch_size: int = 64) -> np.ndarray:
    """Codes of the images of ``factors[N x F]``: float64 ``[N x D]``, in batches of ``batch_size``."""
    out = []
    for start in range(0, len(factors), batch_size):
        z = represent(source.images_of(factors[start : start + batch_size]))
        out.append(z.detach().double().reshape(z.shape[0], -1).cpu().numpy())  # (B, D)
    return np.concatenate(out)


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Per-column equal-width bins between the column's min and max: ``[N x D]`` -> int ``[N x D]`` in
    ``[0, bins)``. A constant column falls into bin 0."""
    lo, hi = codes.min(0), codes.max(0)  # (D,)
    width = np.where(hi > lo, (hi - lo) / bins, 1.0)
    return np.clip(np.floor((codes - lo) / width), 0, bins - 1).astype(np.int64)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two non-negative int label arrays of equal length."""
    a, b = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    na, nb = a.max() + 1, b.max() + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / len(a)  # (na, nb)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def entropy(a: np.ndarray) -> float:
    """Plug-in entropy (nats) of an int label array."""
    p = np.unique(a, return_counts=True)[1] / len(a)
    return float(-(p * np.log(p)).sum())


@dataclass
class MIGResult:
    """``score``: the MIG; ``per_factor[F]``: each factor's normalised gap; ``mutual_info[D x F]`` (nats);
    ``entropy[F]`` of the sampled factors (nats)."""

    score: float
    per_factor: np.ndarray
    mutual_info: np.ndarray
    entropy: np.ndarray


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> MIGResult:
    """MIG of codes ``[N x D]`` against factor classes ``[N x F]`` (see the module docstring)."""
    if len(codes) != len(factors):
        raise UsageError(f"mig_from_codes: {len(codes)} codes for {len(factors)} factor rows; pass one per row")
    binned = discretize(np.asarray(codes, dtype=np.float64), bins)
    d, f = binned.shape[1], factors.shape[1]
    mi = np.array([[mutual_information(binned[:, j], factors[:, k]) for k in range(f)] for j in range(d)])
    h = np.array([entropy(factors[:, k]) for k in range(f)])  # (F,)
    top = -np.sort(-mi, axis=0)  # (D, F), descending per factor
    gap = top[0] - (top[1] if d > 1 else 0.0)
    per_factor = np.where(h > 0, gap / np.where(h > 0, h, 1.0), 0.0)
    return MIGResult(float(per_factor.mean()), per_factor, mi, h)


def mig(represent: Represent, source: FactorSource, num_samples: int = 10000, bins: int = 20, seed: int = 0,
        batch_size: int = 64) -> MIGResult:
    """Mutual information gap of ``represent`` on ``num_samples`` uniformly drawn factor tuples."""
    rng = np.random.default_rng(seed)
    factors = np.asarray(source.sample_factors(num_samples, rng), dtype=np.int64)  # (N, F)
    return mig_from_codes(represent_factors(represent, source, factors, batch_size), factors, bins)


@dataclass
class FactorVAEResult:
    """``score``: held-out vote accuracy; ``train_accuracy``; ``active_dims``: latents kept;
    ``votes[D x F]``: training votes; ``classifier[D]``: each latent's factor (-1 when it got no vote)."""

    score: float
    train_accuracy: float
    active_dims: np.ndarray
    votes: np.ndarray
    classifier: np.ndarray


def _votes(represent: Represent, source: FactorSource, num_votes: int, votes_batch: int, global_std: np.ndarray,
           active: np.ndarray, rng: np.random.Generator, batch_size: int) -> np.ndarray:
    """Vote counts ``[D x F]`` from ``num_votes`` fixed-factor batches of ``votes_batch`` tuples."""
    num_factors = len(source.factor_sizes)
    votes = np.zeros((len(global_std), num_factors), dtype=np.int64)
    per_call = max(1, batch_size // votes_batch)  # votes whose images go through represent together
    for start in range(0, num_votes, per_call):
        n = min(per_call, num_votes - start)
        fixed = rng.integers(0, num_factors, n)  # (n,)
        factors = np.asarray(source.sample_factors(n * votes_batch, rng), dtype=np.int64)
        factors = factors.reshape(n, votes_batch, num_factors)  # (n, L, F)
        factors[np.arange(n), :, fixed] = factors[np.arange(n), 0, fixed][:, None]
        codes = represent_factors(represent, source, factors.reshape(n * votes_batch, num_factors), batch_size)
        codes = codes.reshape(n, votes_batch, -1)  # (n, L, D)
        ratio = codes[:, :, active].var(axis=1, ddof=1) / global_std[active] ** 2  # (n, active)
        np.add.at(votes, (active[ratio.argmin(axis=1)], fixed), 1)
    return votes


def factor_vae_score(represent: Represent, source: FactorSource, votes_batch: int = 64, num_train: int = 10000,
                     num_eval: int = 5000, num_variance_estimate: int = 10000, prune_std: float = 0.05,
                     seed: int = 0, batch_size: int = 1024) -> FactorVAEResult:
    """FactorVAE disentanglement score of ``represent`` (see the module docstring for the settings)."""
    if votes_batch < 2:
        raise UsageError(f"factor_vae_score: votes_batch={votes_batch}; a variance needs at least 2 samples")
    rng = np.random.default_rng(seed)
    factors = np.asarray(source.sample_factors(num_variance_estimate, rng), dtype=np.int64)
    global_std = represent_factors(represent, source, factors, batch_size).std(axis=0, ddof=1)  # (D,)
    active = np.flatnonzero(global_std >= prune_std)
    num_factors = len(source.factor_sizes)
    if len(active) == 0:
        empty = np.zeros((len(global_std), num_factors), dtype=np.int64)
        return FactorVAEResult(0.0, 0.0, active, empty, np.full(len(global_std), -1))
    train = _votes(represent, source, num_train, votes_batch, global_std, active, rng, batch_size)
    classifier = np.where(train.sum(1) > 0, train.argmax(1), -1)  # (D,)
    dims = np.flatnonzero(classifier >= 0)
    train_acc = train[dims, classifier[dims]].sum() / max(1, train.sum())
    held = _votes(represent, source, num_eval, votes_batch, global_std, active, rng, batch_size)
    score = held[dims, classifier[dims]].sum() / max(1, held.sum())
    return FactorVAEResult(float(score), float(train_acc), active, train, classifier)
