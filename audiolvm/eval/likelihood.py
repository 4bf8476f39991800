"""Likelihood evaluation of Gaussian-latent VAEs: importance-sampled NLL, ELBO, bits per dimension,
active units and the mutual information ``I(x; z)``.

The NLL uses the posterior as proposal (Burda et al. 2016):
``log p(x) ~= logsumexp_k(log p(x, z_k) - log q(z_k|x)) - log K``, ``z_k ~ q(z|x)``, with K up to
thousands drawn in chunks (memory bounded by ``chunk_size * batch``) and the logsumexp accumulated
in float64 across chunks. Its expectation is a lower bound on ``log p(x)`` that tightens as K grows,
so the reported NLL is an upper bound (on average). The ELBO is always the beta = 1 bound.

A model needs ``posterior(x, label) -> (mean, logvar)`` and ``log_likelihood(x, z, label) -> Tensor[k*B]``
(:class:`~audiolvm.models.vae.VAE` and subclasses). Every random draw comes from one seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.core.errors import UsageError
from audiolvm.losses.bounds import log_weights
from audiolvm.models.vae import VAE
from audiolvm.nn.mode import eval_mode

Data = torch.Tensor | Iterable


@dataclass
class LikelihoodReport:
    """Means over the evaluated items, in nats per item unless named ``bpd`` (bits per data dimension)."""

    nll: float
    elbo: float
    bpd: float
    elbo_bpd: float
    samples: int
    items: int
    per_item_nll: torch.Tensor  # float64 [N]
    predicted: torch.Tensor | None = None  # Long[N], argmax_y p(y|x) when classes were enumerated

    def as_dict(self) -> dict[str, float]:
        return {"nll": self.nll, "elbo": self.elbo, "bpd": self.bpd, "elbo_bpd": self.elbo_bpd,
                "samples": float(self.samples), "items": float(self.items)}


def bits_per_dim(nll: torch.Tensor | float, num_dims: int, bin_width: float | None = None) -> torch.Tensor | float:
    """Nats per item -> bits per dimension.

    For a continuous density on data quantised with bins of width ``bin_width`` (e.g. ``1/256`` for 8-bit
    images scaled to [0, 1]) the discrete NLL is ``nll + num_dims * log(1 / bin_width)``; leave it None
    for discrete likelihoods (Bernoulli, categorical, discretized logistic).
    """
    offset = 0.0 if bin_width is None else -num_dims * math.log(bin_width)
    return (nll + offset) / (num_dims * math.log(2.0))


def _generator(generator: torch.Generator | None, seed: int, device: torch.device) -> torch.Generator:
    return generator if generator is not None else torch.Generator(device=device).manual_seed(seed)


@torch.no_grad()
def log_marginal(model: VAE, x: torch.Tensor, label: torch.Tensor | None = None, samples: int = 5000,
                 chunk_size: int = 500, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sampled ``log p(x)`` and the ELBO for one batch ``x : Tensor[B x C x *S]``.

    Returns float64 ``(log_px, elbo)``, each ``Tensor[B]``. ``log_px`` uses ``samples`` draws from
    ``q(z|x)`` in chunks of ``chunk_size``; ``elbo = mean_k log p(x|z_k) - KL(q(z|x) || p(z))`` (same draws).
    """
    if samples < 1 or chunk_size < 1:
        raise UsageError(f"log_marginal: samples and chunk_size must be >= 1, got {samples} and {chunk_size}")
    mean, logvar = model.posterior(x, label)  # (B, D, *L)
    batch = x.shape[0]
    lse = torch.full((batch,), -math.inf, dtype=torch.float64, device=x.device)
    recon = torch.zeros(batch, dtype=torch.float64, device=x.device)
    for start in range(0, samples, chunk_size):
        k = min(chunk_size, samples - start)
        z = GaussianBottleneck.sample(mean, logvar, k, generator)  # (k*B, D, *L)
        log_px_z = model.log_likelihood(x, z, label)  # (k*B,)
        log_w = log_weights(log_px_z, GaussianBottleneck.log_prior(z), GaussianBottleneck.log_q(z, mean, logvar), k)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w.double(), dim=0))  # (B,)
        recon += log_px_z.double().view(k, batch).sum(dim=0)
    kl = GaussianBottleneck.kl(mean, logvar).double()
    return lse - math.log(samples), recon / samples - kl


@torch.no_grad()
def log_marginal_over_labels(model: VAE, x: torch.Tensor, num_classes: int, samples: int = 5000,
                             chunk_size: int = 500, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``log p(x) = logsumexp_y [log p(y) + log p(x|y)]`` of a class-conditional model, uniform ``p(y)``.

    Every class is enumerated and ``log p(x|y)`` estimated by :func:`log_marginal` (``samples`` draws from
    ``q(z|x, y)`` per class). Since ``sum_y p(y) p^(x|y)`` is unbiased for ``p(x)``, the log is again a
    stochastic lower bound. Returns float64 ``(log_px [B], elbo [B], log_post [B x K])``: ``elbo`` is
    ``logsumexp_y [log p(y) + ELBO(x, y)]``, the tightest bound that enumerates y over the per-class ELBOs,
    and ``log_post`` the estimated ``log p(y|x)`` (Bayes' rule over the classes).
    """
    if num_classes < 1:
        raise UsageError(f"log_marginal_over_labels: num_classes must be >= 1, got {num_classes}")
    per_class = [log_marginal(model, x, torch.full((x.shape[0],), y, dtype=torch.long, device=x.device),
                              samples, chunk_size, generator) for y in range(num_classes)]
    log_prior = -math.log(num_classes)
    log_joint = torch.stack([log_px for log_px, _ in per_class], dim=1) + log_prior  # (B, K)
    log_px = torch.logsumexp(log_joint, dim=1)  # (B,)
    elbo = torch.logsumexp(torch.stack([elbo for _, elbo in per_class], dim=1) + log_prior, dim=1)  # (B,)
    return log_px, elbo, log_joint - log_px[:, None]


def iter_batches(data: Data, batch_size: int = 64, image_key: str = "image", label_key: str | None = None
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``(x, label)`` batches from a tensor ``[N x C x *S]`` or an iterable of batches (dicts, tensors or
    ``(x, y)`` pairs); ``label`` is read only when ``label_key`` is given."""
    if isinstance(data, torch.Tensor):
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size], None
        return
    for batch in data:
        if isinstance(batch, Mapping):
            yield batch[image_key], (batch[label_key] if label_key else None)
        elif isinstance(batch, torch.Tensor):
            yield batch, None
        else:
            x, y = batch[0], batch[1]
            yield x, (y if label_key else None)


@torch.no_grad()
def estimate_nll(model: VAE, data: Data, samples: int = 5000, chunk_size: int = 500, batch_size: int = 64,
                 seed: int = 0, generator: torch.Generator | None = None, image_key: str = "image",
                 label_key: str | None = None, bin_width: float | None = None,
                 max_items: int | None = None, enumerate_classes: int = 0, progress: bool = False) -> LikelihoodReport:
    """Importance-sampled NLL (and beta = 1 ELBO) over ``data``; see :func:`log_marginal`.

    ``label_key`` names the labels of a class-conditional model, giving ``-log p(x|y)``;
    ``enumerate_classes = K > 0`` instead marginalises such a model over a uniform ``p(y)`` on K classes
    (:func:`log_marginal_over_labels`, K times the cost; labels are not read) and fills ``predicted``.
    ``bin_width`` as in :func:`bits_per_dim`; ``max_items`` stops after that many items. Draws come
    from ``generator`` or a fresh one seeded ``seed``. ``progress`` shows a bar over the batches.
    """
    nlls: list[torch.Tensor] = []
    elbos: list[torch.Tensor] = []
    predicted: list[torch.Tensor] = []
    dims = 0
    batches = iter_batches(data, batch_size, image_key, None if enumerate_classes else label_key)
    total = len(data) if isinstance(data, Sized) and not isinstance(data, torch.Tensor) else None
    desc = f"NLL, K={samples}" + (f" x {enumerate_classes} classes" if enumerate_classes else "")
    with eval_mode(model):
        for x, label in tqdm(batches, desc=desc, total=total, disable=not progress, dynamic_ncols=True):
            if max_items is not None and sum(n.numel() for n in nlls) >= max_items:
                break
            generator = _generator(generator, seed, x.device)
            if enumerate_classes:
                log_px, elbo, log_post = log_marginal_over_labels(model, x, enumerate_classes, samples, chunk_size,
                                                                  generator)
                predicted.append(log_post.argmax(dim=1).cpu())
            else:
                log_px, elbo = log_marginal(model, x, label, samples, chunk_size, generator)
            nlls.append(-log_px.cpu())
            elbos.append(elbo.cpu())
            dims = x[0].numel()
    if not nlls:
        raise UsageError("estimate_nll: no data (empty tensor or loader)")
    nll, elbo = torch.cat(nlls)[:max_items], torch.cat(elbos)[:max_items]
    return LikelihoodReport(nll=nll.mean().item(), elbo=elbo.mean().item(),
                            bpd=float(bits_per_dim(nll.mean().item(), dims, bin_width)),
                            elbo_bpd=float(bits_per_dim(-elbo.mean().item(), dims, bin_width)),
                            samples=samples, items=nll.numel(), per_item_nll=nll,
                            predicted=torch.cat(predicted)[:max_items] if predicted else None)


@torch.no_grad()
def active_units(model: VAE, data: Data, threshold: float = 0.01, batch_size: int = 256,
                 image_key: str = "image", label_key: str | None = None) -> tuple[int, torch.Tensor]:
    """Active units (Burda et al. 2016): latent dims ``d`` with ``Var_x(E_q[z_d | x]) > threshold``.

    Returns the count and the per-dimension variances ``Tensor[D']`` (``D'`` = latent elements per item).
    """
    with eval_mode(model):
        means = [model.posterior(x, label)[0].flatten(1).double().cpu()
                 for x, label in iter_batches(data, batch_size, image_key, label_key)]  # [(B, D')]
    stacked = torch.cat(means)  # (N, D')
    if stacked.shape[0] < 2:
        raise UsageError("active_units needs at least 2 items to estimate a variance")
    variances = stacked.var(dim=0)  # (D',)
    return int((variances > threshold).sum()), variances


def pairwise_log_q(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log q(z_i | x_j)`` for all pairs: ``z, mean, logvar : Tensor[B x D]`` -> ``Tensor[B x B]`` (i, j)."""
    inv_var = torch.exp(-logvar)  # (B, D)
    quad = z.square() @ inv_var.t() - 2.0 * z @ (mean * inv_var).t() + (mean.square() * inv_var).sum(1)  # (B, B)
    const = logvar.sum(1) + z.shape[1] * math.log(2.0 * math.pi)  # (B,) per j
    return -0.5 * (quad + const)


@torch.no_grad()
def mutual_information(model: VAE, data: Data, batch_size: int = 256, seed: int = 0,
                       generator: torch.Generator | None = None, image_key: str = "image",
                       label_key: str | None = None) -> float:
    """``I(x; z) = E_x[KL(q(z|x) || p(z))] - KL(q(z) || p(z)) = E[log q(z|x) - log q(z)]`` (nats).

    The aggregate posterior ``q(z)`` is the mixture of the minibatch's posteriors (Hoffman & Johnson 2016,
    He et al. 2019), one ``z`` per item; batch estimates are averaged weighted by size. The estimate lies
    in ``[.., log B]`` and is exactly 0 when every item has the same posterior.
    """
    total, count = 0.0, 0
    with eval_mode(model):
        for x, label in iter_batches(data, batch_size, image_key, label_key):
            generator = _generator(generator, seed, x.device)
            mean, logvar = (t.flatten(1).double() for t in model.posterior(x, label))  # (B, D') each
            z = GaussianBottleneck.sample(mean, logvar, 1, generator)  # (B, D')
            log_q = pairwise_log_q(z, mean, logvar)  # (B, B)
            log_q_agg = torch.logsumexp(log_q, dim=1) - math.log(x.shape[0])  # (B,)
            total += (log_q.diagonal() - log_q_agg).sum().item()
            count += x.shape[0]
    if count == 0:
        raise UsageError("mutual_information: no data (empty tensor or loader)")
    return total / count
