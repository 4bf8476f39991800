"""Prior sampling versus importance sampling for log p(x), on a model whose log p(x) is exact.

The linear-Gaussian latent model z ~ N(0, I_d), x | z ~ N(W z + b, sigma^2 I_D) has
p(x) = N(b, W W^T + sigma^2 I) and posterior p(z | x) = N(m, S) with S = (I + W^T W / sigma^2)^-1,
m = S W^T (x - b) / sigma^2. With K samples z_k ~ q,

    log p_K(x) = logsumexp_k [log p(x, z_k) - log q(z_k)] - log K,

whose exponential is unbiased, so log p_K is biased low (Jensen) and the bias shrinks as K grows.
q = p(z) (prior sampling) is compared with a full-covariance Gaussian fitted to the one x by a few steps of
stochastic ELBO ascent (Adam, reparameterised samples), started at the prior. With q the exact posterior
every weight equals p(x): zero variance, no bias. Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from audiolvm.lab.figures import pyplot, save

LOG_2PI = math.log(2 * math.pi)
MAX_CHUNK = 2_000_000  # latent samples per chunk of repetitions (memory bound)


@dataclass(frozen=True)
class Gaussian:
    """N(mean, L L^T) over R^d. mean: Tensor[d]; scale_tril: Tensor[d x d] (positive diagonal)."""

    mean: Tensor
    scale_tril: Tensor

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        eps = torch.randn(*shape, len(self.mean), generator=generator, dtype=self.mean.dtype)  # (*shape, d)
        return self.mean + eps @ self.scale_tril.T

    def log_prob(self, z: Tensor) -> Tensor:
        """z: Tensor[... x d] -> Tensor[...]."""
        d = len(self.mean)
        y = torch.linalg.solve_triangular(self.scale_tril, (z - self.mean).reshape(-1, d).T, upper=False)  # (d, M)
        log_det = self.scale_tril.diagonal().log().sum()
        return (-0.5 * y.pow(2).sum(0) - log_det - 0.5 * d * LOG_2PI).reshape(z.shape[:-1])


@dataclass(frozen=True)
class LinearGaussian:
    """z ~ N(0, I_d), x | z ~ N(W z + b, sigma^2 I_D). W: Tensor[D x d]; b: Tensor[D]."""

    W: Tensor
    b: Tensor
    sigma: float

    @classmethod
    def random(cls, latent_dim: int, data_dim: int, sigma: float, generator: torch.Generator) -> LinearGaussian:
        W = torch.randn(data_dim, latent_dim, generator=generator, dtype=torch.float64)
        return cls(W, torch.randn(data_dim, generator=generator, dtype=torch.float64), sigma)

    def sample(self, generator: torch.Generator) -> Tensor:
        """One x: Tensor[D]."""
        z = torch.randn(self.W.shape[1], generator=generator, dtype=torch.float64)
        return self.W @ z + self.b + self.sigma * torch.randn(len(self.b), generator=generator, dtype=torch.float64)

    @property
    def prior(self) -> Gaussian:
        d = self.W.shape[1]
        return Gaussian(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))

    def log_marginal(self, x: Tensor) -> float:
        """Exact log p(x) = log N(x; b, W W^T + sigma^2 I)."""
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(len(self.b), dtype=torch.float64)  # (D, D)
        return Gaussian(self.b, torch.linalg.cholesky(cov)).log_prob(x).item()

    def posterior(self, x: Tensor) -> Gaussian:
        """Exact p(z | x)."""
        precision = torch.eye(self.W.shape[1], dtype=torch.float64) + self.W.T @ self.W / self.sigma**2  # (d, d)
        cov = torch.linalg.inv(precision)
        return Gaussian(cov @ self.W.T @ (x - self.b) / self.sigma**2, torch.linalg.cholesky(cov))

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x, z) for one x (Tensor[D]) and z: Tensor[... x d] -> Tensor[...].

        Uses |r - W z|^2 = r.r - 2 (W^T r).z + z^T (W^T W) z with r = x - b, so the cost is O(d^2) per z.
        """
        r = x - self.b
        quad = r @ r - 2 * z @ (self.W.T @ r) + ((z @ (self.W.T @ self.W)) * z).sum(-1)  # (...)
        D = len(self.b)
        log_lik = -0.5 * quad / self.sigma**2 - D * math.log(self.sigma) - 0.5 * D * LOG_2PI
        return log_lik + self.prior.log_prob(z)


def importance_log_estimates(model: LinearGaussian, x: Tensor, proposal: Gaussian, k: int, reps: int,
                             generator: torch.Generator) -> Tensor:
    """``reps`` independent K-sample estimates of log p(x): Tensor[reps] (chunked over repetitions)."""
    out, chunk = [], max(1, MAX_CHUNK // k)
    for start in range(0, reps, chunk):
        z = proposal.sample((min(chunk, reps - start), k), generator)  # (R, K, d)
        log_w = model.log_joint(x, z) - proposal.log_prob(z)  # (R, K)
        out.append(torch.logsumexp(log_w, dim=1) - math.log(k))
    return torch.cat(out)


def fit_proposal(model: LinearGaussian, x: Tensor, steps: int, lr: float, samples: int,
                 generator: torch.Generator) -> tuple[Gaussian, Tensor]:
    """Full-covariance Gaussian q(z) fitted to one x by ``steps`` Adam steps on a ``samples``-sample
    reparameterised ELBO, started at the prior. Returns q and the ELBO estimate of every step."""
    d = model.W.shape[1]
    mean = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    raw_diag = torch.full((d,), math.log(math.expm1(1.0)), dtype=torch.float64, requires_grad=True)  # softplus^-1(1)
    lower = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mean, raw_diag, lower], lr=lr)

    def q() -> Gaussian:
        return Gaussian(mean, torch.diag_embed(F.softplus(raw_diag)) + torch.tril(lower, diagonal=-1))

    elbos = []
    for _ in range(steps):
        qz = q()
        z = qz.sample((samples,), generator)  # (S, d), differentiable in mean and scale
        elbo = (model.log_joint(x, z) - qz.log_prob(z)).mean()
        opt.zero_grad()
        (-elbo).backward()
        opt.step()
        elbos.append(elbo.item())
    final = q()
    return Gaussian(final.mean.detach(), final.scale_tril.detach()), torch.tensor(elbos, dtype=torch.float64)


def log_spaced(max_k: int, points_per_decade: int = 2) -> list[int]:
    """1, ~3, 10, ~32, ..., max_k: distinct integers, log-spaced."""
    n = max(1, round(math.log10(max_k) * points_per_decade)) + 1
    return sorted({round(v) for v in torch.logspace(0, math.log10(max_k), n, dtype=torch.float64).tolist()})


@dataclass
class ImportanceConfig:
    seed: int = field(default=0, metadata={"help": "seeds the model, x, the proposal fit and the estimates"})
    steps: int = field(default=30, metadata={"help": "ELBO steps that fit the proposal"})
    lr: float = field(default=0.05, metadata={"help": "Adam learning rate of the proposal fit"})
    elbo_samples: int = field(default=8, metadata={"help": "reparameterised samples per ELBO step"})
    latent_dim: int = field(default=2, metadata={"help": "d, the dimension of z"})
    data_dim: int = field(default=10, metadata={"help": "D, the dimension of x"})
    sigma: float = field(default=0.5, metadata={"help": "observation noise standard deviation"})
    reps: int = field(default=300, metadata={"help": "repetitions per K for bias and std"})
    max_k: int = field(default=10_000, metadata={"help": "largest K (K runs 1 .. max_k, log-spaced)"})


@dataclass
class EstimatorStats:
    """Bias and spread of the log-estimate at each K (bias = mean over repetitions - exact log p(x))."""

    ks: list[int]
    bias: list[float]
    std: list[float]
    bias_se: list[float]  # std / sqrt(reps): below this |bias| is not resolved

    @classmethod
    def of(cls, ks: list[int], estimates: list[Tensor], exact: float) -> EstimatorStats:
        bias = [(e.mean() - exact).item() for e in estimates]
        std = [e.std().item() for e in estimates]
        return cls(ks, bias, std, [s / math.sqrt(len(e)) for s, e in zip(std, estimates, strict=True)])


@dataclass
class ImportanceResult:
    config: ImportanceConfig
    exact: float  # log p(x)
    elbo: float  # ELBO of the fitted proposal (exact expectation estimated with 10^4 samples)
    estimators: dict[str, EstimatorStats]  # "prior", "fitted", "posterior"

    def summary(self) -> dict:
        return {"exact_log_px": self.exact, "fitted_elbo": self.elbo,
                "estimators": {name: vars(s) for name, s in self.estimators.items()}}

    def report(self) -> str:
        c = self.config
        lines = [f"linear-Gaussian model d={c.latent_dim}, D={c.data_dim}, sigma={c.sigma}; exact log p(x) = "
                 f"{self.exact:.4f}; fitted proposal ({c.steps} ELBO steps) has ELBO {self.elbo:.4f} "
                 f"(gap {self.exact - self.elbo:.4f}); {c.reps} repetitions per K",
                 "       K |  prior bias   prior std | fitted bias  fitted std | posterior bias, std"]
        p, f, e = (self.estimators[n] for n in ("prior", "fitted", "posterior"))
        for i, k in enumerate(p.ks):
            lines.append(f"  {k:6d} | {p.bias[i]:+10.4f}  {p.std[i]:10.4f} | {f.bias[i]:+10.5f}  {f.std[i]:10.5f} | "
                         f"{e.bias[i]:+.1e}, {e.std[i]:.1e}")
        return "\n".join(lines)


def run_importance(config: ImportanceConfig) -> ImportanceResult:
    """One model and one x from it; bias/std over ``reps`` repetitions for every K, three proposals."""
    gen = torch.Generator().manual_seed(config.seed)
    model = LinearGaussian.random(config.latent_dim, config.data_dim, config.sigma, gen)
    x = model.sample(gen)
    exact = model.log_marginal(x)
    fitted, _ = fit_proposal(model, x, config.steps, config.lr, config.elbo_samples, gen)
    z = fitted.sample((10_000,), gen)
    elbo = (model.log_joint(x, z) - fitted.log_prob(z)).mean().item()
    ks = log_spaced(config.max_k)
    proposals = {"prior": model.prior, "fitted": fitted, "posterior": model.posterior(x)}
    stats = {name: EstimatorStats.of(ks, [importance_log_estimates(model, x, q, k, config.reps, gen) for k in ks],
                                     exact) for name, q in proposals.items()}
    return ImportanceResult(config, exact, elbo, stats)


def plot(result: ImportanceResult, png: str | Path) -> Path:
    """|bias| and std of the log-estimate against K (log-log), prior vs fitted proposal; the exact posterior
    (zero variance) is in the printed numbers only."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"prior": ("tab:red", "prior p(z)"), "fitted": ("tab:blue", "fitted Gaussian q(z|x)")}
    for name, (color, label) in styles.items():
        s = result.estimators[name]
        axes[0].loglog(s.ks, [abs(b) for b in s.bias], "o-", color=color, label=label)
        axes[0].loglog(s.ks, s.bias_se, ":", color=color, lw=1, label=f"{name}: noise floor (std/sqrt(reps))")
        axes[1].loglog(s.ks, s.std, "o-", color=color, label=label)
        ref = s.std[-1] * (s.ks[-1] / torch.tensor(s.ks, dtype=torch.float64)).sqrt()
        axes[1].loglog(s.ks, ref.tolist(), "--", color=color, lw=0.8, alpha=0.6, label=f"{name}: 1/sqrt(K)")
    axes[0].set(xlabel="K (samples)", ylabel="|E[log p_K(x)] - log p(x)|  (nats)",
                title="|bias|  (E[log p_K] <= log p: biased low)")
    axes[1].set(xlabel="K (samples)", ylabel="std of log p_K(x)  (nats)", title="standard deviation")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(f"estimating log p(x) = {result.exact:.3f} ({result.config.reps} repetitions per K)", fontsize=10)
    return save(fig, png)
