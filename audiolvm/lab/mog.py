"""Exact maximum likelihood for a mixture of Gaussians by gradient ascent.

The marginal log-likelihood of a mixture is available in closed form,
``log p(x) = logsumexp_k [log pi_k + log N(x; mu_k, L_k L_k^T)]``, so it can be maximised directly with
Adam (no EM, no latent sampling). Mixing weights are a softmax of free logits; each covariance is given by
its Cholesky factor ``L_k``, lower triangular with a softplus-positive diagonal (``"full"``), or by a
positive diagonal alone (``"diag"``). Data come from a known, seeded mixture (``true_mixture``), so the
fit can be compared with the truth: average log-likelihood and the recovered means after matching
components by the best permutation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiolvm.core.errors import UsageError
from audiolvm.lab.figures import pyplot, save

COVARIANCES = ("full", "diag")
MAX_MATCH_COMPONENTS = 8  # matching tries every permutation


@dataclass(frozen=True)
class MixtureParams:
    """A mixture of K Gaussians in D dimensions (float64 tensors, no gradients).

    weights: Tensor[K] (sums to 1); means: Tensor[K x D]; scale_tril: Tensor[K x D x D] lower Cholesky
    factors of the covariances (positive diagonal).
    """

    weights: Tensor
    means: Tensor
    scale_tril: Tensor

    @property
    def covariances(self) -> Tensor:
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)  # (K, D, D)

    def log_prob(self, x: Tensor) -> Tensor:
        """x: Tensor[N x D] -> log p(x): Tensor[N]."""
        return mixture_log_prob(x, self.weights.log(), self.means, self.scale_tril)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n points: Tensor[n x D], drawn with ``generator`` only."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)  # (n, D)
        return self.means[k] + (self.scale_tril[k] @ eps[:, :, None])[:, :, 0]

    def permuted(self, perm: list[int]) -> MixtureParams:
        return MixtureParams(self.weights[perm], self.means[perm], self.scale_tril[perm])

    def as_dict(self) -> dict[str, list]:
        return {"weights": self.weights.tolist(), "means": self.means.tolist(),
                "covariances": self.covariances.tolist()}


def mixture_log_prob(x: Tensor, log_weights: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    """Exact log-density of a Gaussian mixture.

    x: Tensor[N x D]; log_weights: Tensor[K]; means: Tensor[K x D]; scale_tril: Tensor[K x D x D].
    Returns Tensor[N]: logsumexp over components of log pi_k + log N(x; mu_k, L_k L_k^T).
    """
    d = x.shape[1]
    diff = (x[None] - means[:, None]).transpose(1, 2)  # (K, D, N)
    y = torch.linalg.solve_triangular(scale_tril, diff, upper=False)  # (K, D, N): L^-1 (x - mu)
    log_det = scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,) = 1/2 log|Sigma|
    comp = -0.5 * y.pow(2).sum(1) - log_det[:, None] - 0.5 * d * math.log(2 * math.pi)  # (K, N)
    return torch.logsumexp(log_weights[:, None] + comp, dim=0)  # (N,)


def true_mixture() -> MixtureParams:
    """The known 3-component 2-D mixture the default experiment draws its data from."""
    weights = torch.tensor([0.45, 0.35, 0.20], dtype=torch.float64)
    means = torch.tensor([[-3.0, -1.0], [2.5, -2.0], [0.5, 3.0]], dtype=torch.float64)
    scale_tril = torch.tensor([[[1.0, 0.0], [0.6, 0.5]],
                               [[0.7, 0.0], [-0.5, 0.9]],
                               [[1.2, 0.0], [0.0, 0.4]]], dtype=torch.float64)
    return MixtureParams(weights, means, scale_tril)


class GaussianMixture(nn.Module):
    """Trainable mixture: softmax weights, means, and Cholesky factors with a softplus diagonal."""

    def __init__(self, means: Tensor, covariance: str = "full", scale: float = 1.0) -> None:
        """means: Tensor[K x D] initial means; every covariance starts as ``scale**2 * I``."""
        super().__init__()
        if covariance not in COVARIANCES:
            raise UsageError(f"covariance={covariance!r}; use one of {COVARIANCES}")
        k, d = means.shape
        self.covariance = covariance
        self.logits = nn.Parameter(torch.zeros(k, dtype=means.dtype))
        self.means = nn.Parameter(means.clone())
        raw_diag = torch.full((k, d), math.log(math.expm1(scale)), dtype=means.dtype)  # softplus^-1(scale)
        self.raw_diag = nn.Parameter(raw_diag)
        self.raw_lower = nn.Parameter(torch.zeros(k, d, d, dtype=means.dtype)) if covariance == "full" else None

    def scale_tril(self) -> Tensor:
        """Tensor[K x D x D]: strictly-lower free entries ("full" only) plus a positive diagonal."""
        tril = torch.diag_embed(F.softplus(self.raw_diag) + 1e-6)  # (K, D, D)
        if self.raw_lower is not None:
            tril = tril + torch.tril(self.raw_lower, diagonal=-1)
        return tril

    def forward(self, x: Tensor) -> Tensor:
        """x: Tensor[N x D] -> log p(x): Tensor[N]."""
        return mixture_log_prob(x, torch.log_softmax(self.logits, 0), self.means, self.scale_tril())

    @torch.no_grad()
    def params(self) -> MixtureParams:
        return MixtureParams(torch.softmax(self.logits, 0), self.means.clone(), self.scale_tril())


def kmeans_pp_init(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: k data points, each drawn with probability proportional to its squared distance
    from the points already chosen. x: Tensor[N x D] -> Tensor[k x D]."""
    first = torch.randint(len(x), (1,), generator=generator)
    chosen = [x[first[0]]]
    for _ in range(k - 1):
        d2 = torch.cdist(x, torch.stack(chosen)).pow(2).min(1).values  # (N,)
        chosen.append(x[torch.multinomial(d2, 1, generator=generator)[0]])
    return torch.stack(chosen)


def match_components(true_means: Tensor, fitted_means: Tensor) -> list[int]:
    """The permutation ``perm`` minimising sum_i |true_i - fitted_perm[i]| (exhaustive, K <= 8)."""
    k = len(true_means)
    if k > MAX_MATCH_COMPONENTS:
        raise UsageError(f"{k} components: exhaustive matching is limited to {MAX_MATCH_COMPONENTS}")
    dist = torch.cdist(true_means, fitted_means)  # (K, K)
    return list(min(itertools.permutations(range(k)), key=lambda p: float(dist[range(k), list(p)].sum())))


@dataclass
class MixtureFit:
    """A fitted mixture, its training curve and model samples at some steps."""

    params: MixtureParams
    curve: Tensor  # (steps + 1,) average training log-likelihood before each step and after the last
    snapshots: dict[int, Tensor] = field(default_factory=dict)  # step -> samples (n, D)


def fit_mixture(x: Tensor, k: int, covariance: str, steps: int, lr: float, seed: int,
                snapshot_steps: tuple[int, ...] = (), snapshot_samples: int = 500) -> MixtureFit:
    """Maximise the exact average log-likelihood of ``x`` (Tensor[N x D]) over a k-component mixture with
    full-batch Adam. Initial means by k-means++ (``seed``), covariances isotropic with standard deviation
    (average data std) / k, equal weights. Model samples are drawn at ``snapshot_steps`` with a separate
    generator, so the fit does not depend on them."""
    init_gen = torch.Generator().manual_seed(seed)
    sample_gen = torch.Generator().manual_seed(seed + 1)
    model = GaussianMixture(kmeans_pp_init(x, k, init_gen), covariance, scale=float(x.var(0).mean().sqrt()) / k)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    curve, snapshots = [], {}
    for step in range(steps + 1):
        if step in snapshot_steps:
            snapshots[step] = model.params().sample(snapshot_samples, sample_gen)
        loglik = model(x).mean()
        curve.append(loglik.item())
        if step == steps:
            break
        opt.zero_grad()
        (-loglik).backward()
        opt.step()
    return MixtureFit(model.params(), torch.tensor(curve, dtype=torch.float64), snapshots)


@dataclass
class MixtureConfig:
    seed: int = field(default=0, metadata={"help": "seeds the data, the initialisation and the samples"})
    steps: int = field(default=500, metadata={"help": "full-batch Adam steps"})
    samples: int = field(default=2000, metadata={"help": "training points drawn from the true mixture"})
    covariance: str = field(default="full", metadata={"help": "full (Cholesky) or diag covariances",
                                                      "choices": COVARIANCES})
    lr: float = field(default=0.02, metadata={"help": "Adam learning rate"})
    panels: int = field(default=4, metadata={"help": "sample panels in the figure (log-spaced steps)"})


@dataclass
class MixtureResult:
    config: MixtureConfig
    data: Tensor  # (N, D) training points
    true: MixtureParams
    fit: MixtureFit  # params permuted into the true components' order
    true_loglik: float  # average log-likelihood of the training data under the true mixture
    heldout_loglik: float  # fitted model on fresh data from the true mixture
    true_heldout_loglik: float

    @property
    def mean_errors(self) -> Tensor:
        return (self.fit.params.means - self.true.means).norm(dim=1)  # (K,)

    def summary(self) -> dict:
        return {"covariance": self.config.covariance, "train_loglik": float(self.fit.curve[-1]),
                "true_train_loglik": self.true_loglik, "heldout_loglik": self.heldout_loglik,
                "true_heldout_loglik": self.true_heldout_loglik, "mean_errors": self.mean_errors.tolist(),
                "true": self.true.as_dict(), "fitted": self.fit.params.as_dict(), "curve": self.fit.curve.tolist()}

    def report(self) -> str:
        lines = [f"mixture of {len(self.true.weights)} Gaussians, {self.config.covariance} covariance, "
                 f"{len(self.data)} points, {self.config.steps} Adam steps",
                 f"  avg log-lik (train):    fitted {self.fit.curve[-1]:.4f}   true mixture {self.true_loglik:.4f}",
                 f"  avg log-lik (held out): fitted {self.heldout_loglik:.4f}   true mixture "
                 f"{self.true_heldout_loglik:.4f}",
                 "  component   true mean          fitted mean        |error|  true w  fitted w"]
        for i, err in enumerate(self.mean_errors.tolist()):
            t, f = self.true.means[i].tolist(), self.fit.params.means[i].tolist()
            lines.append(f"  {i:9d}   ({t[0]:6.3f}, {t[1]:6.3f})   ({f[0]:6.3f}, {f[1]:6.3f})   {err:6.3f}  "
                         f"{self.true.weights[i]:6.3f}  {self.fit.params.weights[i]:6.3f}")
        return "\n".join(lines)


def snapshot_steps(steps: int, panels: int) -> tuple[int, ...]:
    """Up to ``panels`` distinct steps: 0, then steps / 5**j (j = panels - 2, ..., 0), ending at ``steps``."""
    later = {round(steps / 5**j) for j in range(max(panels - 1, 0))}
    return tuple(sorted({0} | later))


def run_mog(config: MixtureConfig) -> MixtureResult:
    """Draw data from ``true_mixture()``, fit a mixture with as many components, and compare."""
    true = true_mixture()
    data_gen = torch.Generator().manual_seed(config.seed)
    data, heldout = true.sample(config.samples, data_gen), true.sample(config.samples, data_gen)
    fit = fit_mixture(data, len(true.weights), config.covariance, config.steps, config.lr, config.seed + 1,
                      snapshot_steps(config.steps, config.panels))
    fit.params = fit.params.permuted(match_components(true.means, fit.params.means))
    return MixtureResult(config, data, true, fit, float(true.log_prob(data).mean()),
                         float(fit.params.log_prob(heldout).mean()), float(true.log_prob(heldout).mean()))


def plot(result: MixtureResult, png: str | Path) -> Path:
    """Top: training data (grey) with model samples at the snapshot steps; bottom: the log-likelihood curve
    against the true mixture's."""
    plt = pyplot()
    steps = sorted(result.fit.snapshots)
    fig = plt.figure(figsize=(3.2 * len(steps), 6.2))
    grid = fig.add_gridspec(2, len(steps), height_ratios=(1.2, 1))
    data, lo, hi = result.data.numpy(), result.data.min(0).values - 1, result.data.max(0).values + 1
    for i, step in enumerate(steps):
        ax = fig.add_subplot(grid[0, i])
        ax.scatter(data[:, 0], data[:, 1], s=3, c="0.75", label="data")
        s = result.fit.snapshots[step].numpy()
        ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:red", alpha=0.6, label="model")
        ax.plot(*result.true.means.numpy().T, "k+", ms=10, mew=2, label="true means")
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), title=f"step {step}  (log-lik {result.fit.curve[step]:.2f})")
        ax.title.set_fontsize(9)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    ax = fig.add_subplot(grid[1, :])
    ax.plot(result.fit.curve.numpy(), label=f"fitted ({result.config.covariance} covariance)")
    ax.axhline(result.true_loglik, color="k", ls="--", label=f"true mixture ({result.true_loglik:.3f})")
    low = min(result.true_loglik - 1.0, float(result.fit.curve[len(result.fit.curve) // 10]))
    ax.set(xlabel="Adam step", ylabel="avg log-likelihood (train)", ylim=(low, result.true_loglik + 0.3))
    ax.legend(fontsize=8)
    return save(fig, png)
