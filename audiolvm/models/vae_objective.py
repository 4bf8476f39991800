"""Step functions for the VAE family: ``(model, batch) -> {"loss", logged terms}``.

All values are in nats per item (summed over data and latent dims, averaged over the batch). The
logged ``elbo`` is always the beta = 1 bound, whatever beta, capacity or warm-up the loss uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import torch
from torch import nn

from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.core.errors import UsageError
from audiolvm.losses.bounds import (
    ESTIMATORS,
    Schedule,
    active_dims,
    elbo_analytic,
    free_bits_kl,
    iwae_surrogate,
    kl_penalty,
)
from audiolvm.models.vae import VAEOutput


class LogDensities(TypedDict):
    """What :func:`sample_log_densities` returns (a plain dict)."""

    log_pz: torch.Tensor
    log_q: torch.Tensor
    log_q_stop: torch.Tensor | None


def sample_log_densities(out: VAEOutput, stopped: bool = True) -> LogDensities:
    """``log p(z_k)``, ``log q(z_k|x)`` and (if ``stopped``, which STL / DReG need) ``log q`` with stopped
    parameters, each float32 ``Tensor[k*B]``."""
    z, mean, logvar = out.z.float(), out.mean.float(), out.logvar.float()  # no copies unless under autocast
    return {
        "log_pz": GaussianBottleneck.log_prior(z),
        "log_q": GaussianBottleneck.log_q(z, mean, logvar),
        "log_q_stop": GaussianBottleneck.log_q(z, mean, logvar, stop_grad_params=True) if stopped else None,
    }


def item_bound(out: VAEOutput, estimator: str = "standard", analytic_kl: bool = True) -> torch.Tensor:
    """Per-item bound surrogate ``Tensor[B]``: the analytic-KL ELBO (k = 1, standard, ``analytic_kl``)
    or ``L_k`` with full densities and the chosen estimator's gradient (IWAE; STL / DReG at any k)."""
    if out.samples == 1 and estimator == "standard" and analytic_kl:
        return elbo_analytic(out.log_px_z, out.kl_elements.flatten(1).sum(dim=1))
    dens = sample_log_densities(out, stopped=estimator != "standard")
    return iwae_surrogate(out.log_px_z, dens["log_pz"], dens["log_q"], dens["log_q_stop"], out.z, out.samples,
                          "stl" if estimator == "dreg" and out.samples == 1 else estimator)


def _logged(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A schedule's value (a float, or a tensor computed from the step counter) as a float32 scalar on ``like``'s
    device, detached."""
    if isinstance(value, torch.Tensor):
        return value.detach().float()
    return torch.tensor(float(value), device=like.device)


class VAEObjective:
    """Loss for VAE, beta-VAE (with capacity / warm-up / free bits) and IWAE (k > 1, any estimator).

    k = 1: ``loss = -E[log p(x|z)] + w(t) * KL`` with ``w(t) = beta * warmup(t)``, or
    ``beta * |KL - C(t)|`` with a capacity schedule; KL is analytic (``analytic_kl``, standard estimator)
    or the single-sample ``log q - log p`` (STL stops the variational parameters inside it); free bits
    floor the batch-mean KL of every latent dim (analytic KL only).
    k > 1: ``loss = -L_k`` through the estimator's surrogate; beta, capacity, warm-up and free bits must
    stay off (they are defined for the k = 1 ELBO).

    Returns ``loss``, ``elbo`` (beta = 1, analytic KL), ``recon`` (``-log p(x|z)``), ``kl``, ``kl/weight``,
    ``kl/per_dim``, ``kl/active`` (latent dims with batch-mean KL > ``active_threshold``), ``iwae`` (k > 1)
    and ``kl/capacity`` (with a capacity schedule).

    Args:
        beta: KL weight. estimator: ``standard``, ``stl`` or ``dreg``.
        analytic_kl: closed-form KL for the standard k = 1 ELBO.
        free_bits: per-dimension KL floor in nats (0 = off).
        warmup: schedule of the KL weight multiplier over training steps (``None`` = 1).
        capacity: schedule of the target KL ``C(t)`` in nats (``None`` = plain beta * KL).
        image_key, label_key: batch entries; ``conditional`` passes ``batch[label_key]`` to the model.
    """

    def __init__(self, beta: float = 1.0, estimator: str = "standard", analytic_kl: bool = True,
                 free_bits: float = 0.0, warmup: Schedule | None = None, capacity: Schedule | None = None,
                 conditional: bool = False, image_key: str = "image", label_key: str = "label",
                 active_threshold: float = 0.01) -> None:
        if estimator not in ESTIMATORS:
            raise UsageError(f"VAEObjective: unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
        if beta < 0 or free_bits < 0:
            raise UsageError(f"VAEObjective: beta and free_bits must be >= 0, got {beta} and {free_bits}")
        if free_bits > 0 and not (analytic_kl and estimator == "standard"):
            raise UsageError("VAEObjective: free_bits needs the analytic per-dimension KL "
                             "(analytic_kl=True, estimator='standard')")
        self.beta, self.estimator, self.analytic_kl, self.free_bits = beta, estimator, analytic_kl, free_bits
        self.warmup, self.capacity, self.conditional = warmup, capacity, conditional
        self.image_key, self.label_key, self.active_threshold = image_key, label_key, active_threshold

    def __call__(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[self.image_key]
        out = model(x, batch[self.label_key], sample=True) if self.conditional else model(x, sample=True)
        kl_elements = out.kl_elements  # (B, D, *L)
        kl = kl_elements.flatten(1).sum(dim=1)  # (B,)
        k = out.samples
        log_px_z = out.log_px_z.view(k, -1)  # (k, B)
        with torch.no_grad():  # logged only: no graph for these
            logged = {
                "elbo": elbo_analytic(log_px_z.mean(dim=0), kl).mean(),
                "recon": -log_px_z.mean(),
                "kl": kl.mean(),
                "kl/per_dim": kl_elements.mean(),
                "kl/active": active_dims(kl_elements, self.active_threshold),
            }
        if k > 1:
            return {"loss": self._iwae_loss(out, logged), **logged}
        return {"loss": self._elbo_loss(out, kl_elements, logged), **logged}

    def _iwae_loss(self, out: VAEOutput, logged: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.beta != 1.0 or self.free_bits or self.warmup is not None or self.capacity is not None:
            raise UsageError(f"VAEObjective: beta, free_bits, warmup and capacity apply to the k = 1 ELBO, but the "
                             f"model draws k={out.samples} samples (IWAE); set them to their defaults or use samples=1")
        bound = item_bound(out, self.estimator)  # (B,)
        logged["iwae"] = bound.detach().mean()
        logged["kl/weight"] = torch.ones((), device=bound.device)
        return -bound.mean()

    def _elbo_loss(self, out: VAEOutput, kl_elements: torch.Tensor, logged: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.estimator == "standard" and self.analytic_kl:
            kl_items = kl_elements.flatten(1).sum(dim=1)  # (B,)
        else:
            dens = sample_log_densities(out, stopped=self.estimator != "standard")
            log_q = dens["log_q"] if self.estimator == "standard" else dens["log_q_stop"]
            assert log_q is not None  # stopped=True gives log_q_stop
            kl_items = log_q - dens["log_pz"]  # (B,): single-sample KL estimate
        kl_value = free_bits_kl(kl_elements, self.free_bits) if self.free_bits else kl_items.mean()
        weight = self.beta * (self.warmup(out.step) if self.warmup is not None else 1.0)
        capacity = self.capacity(out.step) if self.capacity is not None else None
        logged["kl/weight"] = _logged(weight, out.log_px_z)
        if capacity is not None:
            logged["kl/capacity"] = _logged(capacity, out.log_px_z)
        return -out.log_px_z.mean() + kl_penalty(kl_value, weight, capacity)
