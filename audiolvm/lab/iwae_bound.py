"""The importance-weighted bound ``L_k`` against k on a trained VAE (Burda et al. 2016).

With ``log w_j = log p(x, z_j) - log q(z_j|x)``, ``z_j ~ q(z|x)``,

    L_k = E[ logsumexp_{j<=k} log w_j - log k ],   L_1 = ELBO <= L_k <= L_m <= log p(x)  (k <= m).

Every point of the curve is estimated from one pool of ``K`` weights per item: ``L_k`` is the average of
``log mean(w)`` over the ``K // k`` disjoint groups of k consecutive pool samples. When k divides m this is
*deterministically* ``<= L_m`` per item (each m-group mean is an average of k-group means; Jensen), so with
the default ks (all dividing K = 5000, and a divisor chain except 2 -> 5) the curve can only rise, and every
point is ``<=`` the pool's own ``L_K``. The reference ``log p(x)`` is an independent ``K``-sample importance
estimate (:func:`audiolvm.eval.likelihood.log_marginal`, another seed), so ``L_k <= reference`` holds up to
Monte Carlo noise only. The model is an MLP VAE (Bernoulli) trained on statically binarized 8x8 digits,
or any VAE passed to :func:`run_iwae_k`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.core.errors import UsageError
from audiolvm.data.images import digits_split
from audiolvm.eval.likelihood import log_marginal
from audiolvm.lab.figures import pyplot, save
from audiolvm.losses.bounds import log_weights
from audiolvm.losses.likelihoods import BernoulliLikelihood
from audiolvm.models.vae import VAE
from audiolvm.models.vae_objective import VAEObjective
from audiolvm.nn.mlp import MLPDecoder, MLPEncoder

IMAGE_SHAPE = (1, 8, 8)


def digits_tensors(num_test: int = 500) -> tuple[Tensor, Tensor]:
    """Statically binarized digits (``x / 16 > 0.5``): (train ``[1297 x 1 x 8 x 8]``, test ``[500 x 1 x 8 x 8]``)."""
    train, test = digits_split(num_test=num_test, binarize="static")
    return (torch.stack([train[i]["image"] for i in range(len(train))]),
            torch.stack([test[i]["image"] for i in range(len(test))]))


def mlp_vae(latent_dim: int = 8, hidden: Sequence[int] = (200, 200), samples: int = 1) -> VAE:
    """MLP VAE 64-hidden-latent (Bernoulli likelihood) for ``[B x 1 x 8 x 8]`` binary images."""
    encoder = MLPEncoder(IMAGE_SHAPE, 2 * latent_dim, hidden, activation="tanh")
    decoder = MLPDecoder(latent_dim, IMAGE_SHAPE, tuple(reversed(hidden)), activation="tanh")
    return VAE(encoder, GaussianBottleneck(samples=samples), decoder, BernoulliLikelihood(), (latent_dim,))


def train_vae(model: torch.nn.Module, x: Tensor, objective: VAEObjective, steps: int, batch_size: int, lr: float,
              seed: int, log_every: int = 1) -> list[dict[str, float]]:
    """Adam on ``objective`` over minibatches of ``x : Tensor[N x C x H x W]`` drawn by one seeded generator
    (its state also seeds the model's sampling). Returns the logged terms every ``log_every`` steps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = []
    for step in range(steps):
        idx = torch.randint(len(x), (batch_size,), generator=gen)
        torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=gen)))  # the bottleneck's noise
        terms = objective(model, {"image": x[idx]})
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step, **{k: float(v.detach()) for k, v in terms.items()}})
    model.eval()
    return history


@torch.no_grad()
def weight_pool(model: VAE, x: Tensor, samples: int, generator: torch.Generator, chunk_size: int = 100) -> Tensor:
    """``log w`` of ``samples`` posterior draws per item: float64 ``Tensor[samples x B]`` for ``x : [B x ...]``."""
    mean, logvar = model.posterior(x)  # (B, D)
    pool = []
    for start in range(0, samples, chunk_size):
        k = min(chunk_size, samples - start)
        z = GaussianBottleneck.sample(mean, logvar, k, generator)  # (k*B, D)
        log_px_z = model.log_likelihood(x, z)  # (k*B,)
        pool.append(log_weights(log_px_z, GaussianBottleneck.log_prior(z), GaussianBottleneck.log_q(z, mean, logvar),
                                k).double())  # (k, B)
    return torch.cat(pool)  # (samples, B)


def grouped_bound(pool: Tensor, k: int) -> Tensor:
    """``L_k`` per item averaged over the ``K // k`` disjoint k-groups of ``pool : Tensor[K x B]`` -> ``[B]``."""
    groups = pool.shape[0] // k
    if groups < 1:
        raise UsageError(f"grouped_bound: k={k} exceeds the pool of {pool.shape[0]} samples; draw more samples")
    log_w = pool[: groups * k].reshape(groups, k, -1)  # (G, k, B)
    return (torch.logsumexp(log_w, dim=1) - math.log(k)).mean(dim=0)  # (B,)


@dataclass
class IWAEConfig:
    seed: int = field(default=0, metadata={"help": "seeds the model, its training and every sample"})
    steps: int = field(default=1000, metadata={"help": "Adam steps of VAE training (batch --batch-size)"})
    batch_size: int = field(default=100, metadata={"help": "training minibatch"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    latent_dim: int = field(default=8, metadata={"help": "latent dimensions"})
    hidden: tuple[int, ...] = field(default=(200, 200), metadata={"help": "MLP hidden sizes (encoder; reversed "
                                                                          "for the decoder)"})
    ks: tuple[int, ...] = field(default=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
                                metadata={"help": "k of the bounds L_k (each should divide --pool)"})
    pool: int = field(default=5000, metadata={"help": "K: posterior samples per item, shared by every L_k, and "
                                                      "of the reference log p(x)"})
    test_items: int = field(default=500, metadata={"help": "test digits evaluated (of the 500 held out)"})


@dataclass
class IWAEResult:
    config: IWAEConfig
    ks: list[int]
    bounds: list[float]  # mean over items of L_k, nats
    reference: float  # mean independent K-sample IS estimate of log p(x)
    reference_mc_se: float  # Monte Carlo standard error of the mean reference: std(L_K - ref) / sqrt(2 N)
    per_item_drops: int  # items whose L_k curve falls somewhere (possible only across non-divisor pairs)
    above_reference: list[float]  # fraction of items with L_k > reference, per k
    train_elbo: float | None  # training ELBO of the last step (None for a given model)

    def summary(self) -> dict:
        return {"ks": self.ks, "bounds": self.bounds, "log_px_reference": self.reference,
                "reference_mc_se": self.reference_mc_se, "per_item_drops": self.per_item_drops,
                "fraction_above_reference": self.above_reference, "train_elbo": self.train_elbo}

    def report(self) -> str:
        c = self.config
        lines = [f"L_k on {c.test_items} test digits (pool of K={c.pool} posterior samples per item, disjoint-"
                 f"group averages)\nreference log p(x) = {self.reference:.4f} (independent K={c.pool} IS, MC s.e. "
                 f"{self.reference_mc_se:.4f}); items whose L_k curve falls somewhere: {self.per_item_drops}",
                 "       k |       L_k | L_k - ref | items with L_k > ref"]
        for k, b, f in zip(self.ks, self.bounds, self.above_reference, strict=True):
            lines.append(f"  {k:6d} | {b:9.4f} | {b - self.reference:+9.4f} | {f:6.1%}")
        return "\n".join(lines)


def iwae_curve(model: VAE, x: Tensor, ks: Sequence[int], pool: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-item ``L_k`` (float64 ``Tensor[len(ks) x B]``) from one pool, the pool ``log w : [K x B]`` and the
    independent reference ``log p(x) : [B]`` (another seed)."""
    log_w = weight_pool(model, x, pool, torch.Generator().manual_seed(seed))  # (K, B)
    curve = torch.stack([grouped_bound(log_w, k) for k in ks])  # (len(ks), B)
    reference, _ = log_marginal(model, x, samples=pool, chunk_size=100,
                                generator=torch.Generator().manual_seed(seed + 1))
    return curve, log_w, reference


def run_iwae_k(config: IWAEConfig, model: VAE | None = None) -> IWAEResult:
    """Train the MLP VAE of ``config`` (or use ``model``, which must take ``[B x 1 x 8 x 8]`` binary digits)
    and compute L_k for every k of ``config.ks`` on the first ``test_items`` test digits."""
    torch.manual_seed(config.seed)
    train, test = digits_tensors()
    train_elbo = None
    if model is None:
        model = mlp_vae(config.latent_dim, config.hidden)
        history = train_vae(model, train, VAEObjective(), config.steps, config.batch_size, config.lr, config.seed,
                            log_every=max(1, config.steps // 20))
        train_elbo = history[-1]["elbo"]
    model.eval()
    x = test[: config.test_items]
    curve, log_w, reference = iwae_curve(model, x, config.ks, config.pool, config.seed)
    drops = int((curve.diff(dim=0) < -1e-9).any(dim=0).sum())
    above = [(row > reference).double().mean().item() for row in curve]
    pool_estimate = grouped_bound(log_w, config.pool)  # (B,): L_K of the pool, same K as the reference
    mc_se = ((pool_estimate - reference).std() / math.sqrt(2 * len(reference))).item()
    return IWAEResult(config, list(config.ks), curve.mean(dim=1).tolist(), reference.mean().item(), mc_se, drops,
                      above, train_elbo)


def plot(result: IWAEResult, png: str | Path) -> Path:
    """Mean L_k against k (log axis) with the reference log p(x)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.semilogx(result.ks, result.bounds, "o-", color="tab:blue", label="L_k (mean over test digits)")
    ax.axhline(result.reference, color="tab:red", ls="--",
               label=f"log p(x), IS with K={result.config.pool}: {result.reference:.3f}")
    ax.set(xlabel="k (importance samples)", ylabel="nats per digit",
           title=f"IWAE bound vs k ({result.config.test_items} test digits, L_1 = ELBO)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, png)
