"""Variational bounds on ``log p(x)`` and the gradient estimators that optimise them.

Everything here works on per-sample log densities, so it is independent of the model:

* ``log_px_z``: ``log p(x|z_k)``, ``Tensor[k*B]`` (k-major: sample i of item b is row ``i * B + b``);
* ``log_pz``: ``log p(z_k)`` and ``log_q``: ``log q(z_k|x)``, ``Tensor[k*B]`` each, summed over latent dims.

Bounds (per item, ``Tensor[B]``):

* ELBO with an analytic KL: ``log p(x|z) - KL(q(z|x) || p(z))`` (k = 1);
* IWAE: ``L_k = logsumexp_k(log w_k) - log k`` with ``log w_k = log p(x, z_k) - log q(z_k|x)`` and full
  densities (``L_1`` is the ELBO; ``L_k`` grows with k towards ``log p(x)``).

Encoder-gradient estimators, as surrogates whose *value* is ``L_k`` and whose *gradient* is the estimator's
(``loss = -surrogate``, one backward):

* ``standard``: autograd of ``L_k``: ``sum_k w~_k grad log w_k`` (w~: normalised weights);
* ``stl`` (sticking the landing, Roeder et al. 2017): the same with the variational parameters
  stopped inside ``log q``, so the encoder gets only the path (through-``z``) gradient;
* ``dreg`` (doubly reparameterised, Tucker et al. 2018): encoder ``sum_k w~_k^2 d log w_k/dz_k dz_k/dphi``
  (params stopped in ``log q``), decoder ``sum_k w~_k grad_theta log w_k``.

KL-weighting tools for the k = 1 ELBO: beta, Burgess et al.'s capacity ``beta |KL - C(t)|``, free bits
per latent dimension, and warm-up schedules (linear, cyclical) of a step count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch

from audiolvm.core.errors import UsageError

ESTIMATORS = ("standard", "stl", "dreg")


def log_weights(log_px_z: torch.Tensor, log_pz: torch.Tensor, log_q: torch.Tensor, k: int) -> torch.Tensor:
    """``log w = log p(x|z) + log p(z) - log q(z|x)``: three ``Tensor[k*B]`` -> ``Tensor[k x B]``."""
    if not (log_px_z.shape == log_pz.shape == log_q.shape) or log_px_z.dim() != 1 or log_px_z.numel() % k:
        raise UsageError(f"log_weights: expected three Tensor[k*B] with k={k}, got shapes {tuple(log_px_z.shape)}, "
                         f"{tuple(log_pz.shape)}, {tuple(log_q.shape)}")
    return (log_px_z + log_pz - log_q).view(k, -1)  # (k, B)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``L_k = logsumexp_k(log w_k) - log k`` for ``log_w : Tensor[k x B]`` -> ``Tensor[B]``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def elbo_analytic(log_px_z: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """ELBO ``log p(x|z) - KL`` with the closed-form KL: ``Tensor[B]`` each -> ``Tensor[B]`` (k = 1)."""
    return log_px_z - kl


def normalized_weights(log_w: torch.Tensor) -> torch.Tensor:
    """Detached ``w~_k = w_k / sum_j w_j`` over dim 0 of ``log_w : Tensor[k x B]``."""
    return torch.softmax(log_w.detach(), dim=0)


def iwae_surrogate(log_px_z: torch.Tensor, log_pz: torch.Tensor, log_q: torch.Tensor, log_q_stop: torch.Tensor | None,
                   z: torch.Tensor, k: int, estimator: str = "standard") -> torch.Tensor:
    """``Tensor[B]`` equal in value to ``L_k``, whose gradient is the chosen estimator's.

    Args:
        log_px_z, log_pz: ``Tensor[k*B]``.
        log_q: ``log q(z|x)`` with gradients to the variational parameters, ``Tensor[k*B]``.
        log_q_stop: the same with the parameters detached (gradient through ``z`` only), ``Tensor[k*B]``;
            needed by ``stl`` and ``dreg`` only (None is fine for ``standard``).
        z: the reparameterised samples ``Tensor[(k*B) x ...]`` that every term above was computed from;
            ``dreg`` registers a gradient hook on it, so call this once per forward pass.
        k: samples per item.
        estimator: ``"standard"``, ``"stl"`` or ``"dreg"``.
    """
    if estimator not in ESTIMATORS:
        raise UsageError(f"unknown gradient estimator {estimator!r}; choose one of {ESTIMATORS}")
    if estimator == "standard":
        return iwae_bound(log_weights(log_px_z, log_pz, log_q, k))
    if log_q_stop is None:
        raise UsageError(f"iwae_surrogate: the {estimator!r} estimator needs log_q_stop (log q with detached "
                         "parameters)")
    log_w = log_weights(log_px_z, log_pz, log_q_stop, k)  # (k, B): encoder gradient only through z
    if estimator == "dreg" and z.requires_grad:
        _scale_rows_in_backward(z, normalized_weights(log_w).reshape(-1))  # path gradient * w~ -> w~^2
    return iwae_bound(log_w)


def _scale_rows_in_backward(z: torch.Tensor, scale: torch.Tensor) -> None:
    """Multiply the gradient arriving at ``z : Tensor[(k*B) x ...]`` row-wise by ``scale : Tensor[k*B]``."""
    shape = (-1, *([1] * (z.dim() - 1)))
    z.register_hook(lambda grad: grad * scale.view(shape).to(grad.dtype))


def free_bits_kl(kl_elements: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL with a floor per latent dimension: ``sum_d max(mean_b KL_{b,d}, free_bits)`` (nats).

    ``kl_elements : Tensor[B x D x *S]`` (analytic KL of every latent element); the batch mean of each
    dimension below ``free_bits`` is held at ``free_bits`` and gets no gradient (Kingma et al. 2016).
    """
    per_dim = kl_elements.mean(dim=0)  # (D, *S)
    return per_dim.clamp(min=free_bits).sum()


def kl_penalty(kl: torch.Tensor, weight: float | torch.Tensor, capacity: float | torch.Tensor | None = None
               ) -> torch.Tensor:
    """``weight * KL`` or, with a capacity ``C``, ``weight * |KL - C|`` (Burgess et al. 2018); ``kl`` scalar."""
    return weight * (kl - capacity).abs() if capacity is not None else weight * kl


def active_dims(kl_elements: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """Number of latent dims whose batch-mean KL exceeds ``threshold`` nats (``Tensor[B x D x *S]`` -> scalar)."""
    return (kl_elements.detach().mean(dim=0) > threshold).sum().float()


# ------------------------------------------------------------------------------------------ schedules
#: a training step: an int, or a 0-dim tensor (the model's step counter read without a host sync, which also
#: keeps a compiled step in one graph); schedules return a float or a tensor to match
Step = int | torch.Tensor
#: what a schedule returns: a float for an int step, a 0-dim tensor for a tensor step
ScheduleValue = float | torch.Tensor


def _clip01(value: ScheduleValue) -> ScheduleValue:
    return value.clamp(0.0, 1.0) if isinstance(value, torch.Tensor) else min(max(value, 0.0), 1.0)


@dataclass(frozen=True)
class ConstantSchedule:
    """``value`` at every step."""

    value: float = 1.0

    def __call__(self, step: Step) -> float:
        return self.value


@dataclass(frozen=True)
class LinearSchedule:
    """``start`` until ``delay``, then linear to ``end`` at ``delay + steps``, then ``end`` (KL warm-up, capacity)."""

    start: float = 0.0
    end: float = 1.0
    steps: int = 10_000
    delay: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.delay < 0:
            raise UsageError(f"LinearSchedule: steps must be >= 1 and delay >= 0, got {self.steps}, {self.delay}")

    def __call__(self, step: Step) -> ScheduleValue:
        progress = _clip01((step - self.delay) / self.steps)
        return self.start + (self.end - self.start) * progress


@dataclass(frozen=True)
class CyclicalSchedule:
    """Cyclical annealing (Fu et al. 2019): each ``period`` steps, rise linearly from ``low`` to ``high``
    over the first ``ramp`` fraction, then hold ``high``; after ``cycles`` cycles (if set) stay at ``high``."""

    period: int = 10_000
    ramp: float = 0.5
    low: float = 0.0
    high: float = 1.0
    cycles: int | None = None

    def __post_init__(self) -> None:
        if self.period < 1 or not 0.0 < self.ramp <= 1.0:
            raise UsageError(f"CyclicalSchedule: need period >= 1 and 0 < ramp <= 1, got {self.period}, {self.ramp}")

    def __call__(self, step: Step) -> ScheduleValue:
        phase = (step % self.period) / self.period
        value = self.low + (self.high - self.low) * _clip01(phase / self.ramp)
        if self.cycles is None:
            return value
        done = step >= self.cycles * self.period
        if isinstance(done, torch.Tensor):  # a tensor step (then value is a tensor too)
            return torch.where(done, self.high, cast(torch.Tensor, value))
        return self.high if done else value


Schedule = ConstantSchedule | LinearSchedule | CyclicalSchedule
SCHEDULES: dict[str, type] = {"constant": ConstantSchedule, "linear": LinearSchedule, "cyclical": CyclicalSchedule}


def make_schedule(kind: str, **kwargs: float) -> Schedule:
    """Build a schedule by name (``constant``, ``linear``, ``cyclical``) from its fields."""
    if kind not in SCHEDULES:
        raise UsageError(f"unknown schedule {kind!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[kind](**kwargs)
