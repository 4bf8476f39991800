"""Score-function (REINFORCE) versus pathwise (reparameterisation) gradient estimators.

Learn mu in R^2 to minimise L(mu) = E_{x ~ N(mu, I)} |x - t|^2 with t = (5, 5); L(mu) = |mu - t|^2 + 2 and
the exact gradient is 2 (mu - t). From S samples x_s = mu + eps_s:

* ``score``: mean_s f(x_s) grad_mu log N(x_s; mu, I) = mean_s f(x_s) (x_s - mu), f(x) = |x - t|^2;
* ``score+baseline``: the same with f(x_s) replaced by f(x_s) - b_s, b_s the mean of the other S - 1 samples'
  f (leave-one-out, so b_s is independent of x_s and the estimator stays unbiased; with S = 1 there is no
  other sample and b_s = 0);
* ``pathwise``: mean_s grad_mu f(mu + eps_s) = mean_s 2 (x_s - t).

Each is computed by autograd through the surrogate loss one would write in practice (a detached weight
times log q for the score function, f(mu + eps) for the pathwise one), for many independent copies of mu
at once: mu is Tensor[R x 2] and copy r only touches row r, so ``mu.grad`` holds R independent estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import Tensor

from audiolvm.core.errors import UsageError
from audiolvm.lab.figures import pyplot, save

TARGET = (5.0, 5.0)
Estimator = Callable[[Tensor, int, torch.Generator], Tensor]


def objective(x: Tensor) -> Tensor:
    """f(x) = |x - t|^2. x: Tensor[... x 2] -> Tensor[...]."""
    return (x - torch.tensor(TARGET, dtype=x.dtype)).pow(2).sum(-1)


def exact_gradient(mu: Tensor) -> Tensor:
    """grad L(mu) = 2 (mu - t). mu: Tensor[... x 2]."""
    return 2 * (mu - torch.tensor(TARGET, dtype=mu.dtype))


def _score(mu: Tensor, samples: int, generator: torch.Generator, baseline: bool) -> Tensor:
    mu = mu.detach().requires_grad_()
    x = (mu[:, None] + torch.randn(*mu.shape[:1], samples, 2, generator=generator, dtype=mu.dtype)).detach()  # (R,S,2)
    f = objective(x)  # (R, S)
    if baseline and samples > 1:
        f = f - (f.sum(1, keepdim=True) - f) / (samples - 1)  # leave-one-out baseline
    log_q = -0.5 * (x - mu[:, None]).pow(2).sum(-1)  # (R, S), log N(x; mu, I) up to a constant
    (f * log_q).mean(1).sum().backward()
    return cast(Tensor, mu.grad)  # set by backward(): mu is a leaf that requires grad


def score_gradient(mu: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """REINFORCE without a baseline. mu: Tensor[R x 2] -> R independent estimates: Tensor[R x 2]."""
    return _score(mu, samples, generator, baseline=False)


def score_baseline_gradient(mu: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """REINFORCE with the leave-one-out mean baseline. mu: Tensor[R x 2] -> Tensor[R x 2]."""
    return _score(mu, samples, generator, baseline=True)


def pathwise_gradient(mu: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """Reparameterisation x = mu + eps. mu: Tensor[R x 2] -> Tensor[R x 2]."""
    mu = mu.detach().requires_grad_()
    x = mu[:, None] + torch.randn(*mu.shape[:1], samples, 2, generator=generator, dtype=mu.dtype)  # (R, S, 2)
    objective(x).mean(1).sum().backward()
    return cast(Tensor, mu.grad)  # set by backward(): mu is a leaf that requires grad


ESTIMATORS: dict[str, Estimator] = {
    "score": score_gradient, "score+baseline": score_baseline_gradient, "pathwise": pathwise_gradient,
}


def gradient_stats(estimator: Estimator, mu: tuple[float, float], samples: int, reps: int,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``reps`` independent S-sample estimates at one mu: their mean (Tensor[2]) and covariance (Tensor[2 x 2])."""
    grads = estimator(torch.tensor([mu], dtype=torch.float64).expand(reps, 2), samples, generator)  # (R, 2)
    return grads.mean(0), torch.cov(grads.T)


def sgd_trajectory(estimator: Estimator, start: tuple[float, float], samples: int, steps: int, lr: float,
                   generator: torch.Generator) -> Tensor:
    """Plain SGD mu <- mu - lr * g from ``start``. Returns the iterates: Tensor[(steps + 1) x 2]."""
    mu = torch.tensor([start], dtype=torch.float64)  # (1, 2)
    path = [mu[0]]
    for _ in range(steps):
        mu = mu - lr * estimator(mu, samples, generator)
        path.append(mu[0])
    return torch.stack(path)


@dataclass
class GradientsConfig:
    seed: int = field(default=0, metadata={"help": "seeds every estimator's noise"})
    steps: int = field(default=200, metadata={"help": "SGD steps per trajectory"})
    lr: float = field(default=0.02, metadata={"help": "SGD learning rate"})
    start: tuple[float, float] = field(default=(0.0, 0.0), metadata={"help": "initial mu", "nargs": 2})
    samples: tuple[int, ...] = field(default=(1, 10, 100), metadata={"help": "samples per step of the trajectories"})
    max_samples: int = field(default=1000, metadata={"help": "largest S of the variance sweep (1 .. max, log-spaced)"})
    reps: int = field(default=1000, metadata={"help": "repetitions per S for the variance at mu = start"})


@dataclass
class GradientsResult:
    config: GradientsConfig
    sweep: list[int]  # S values of the variance sweep
    variance: dict[str, list[float]]  # estimator -> trace of the gradient covariance at each S
    bias: dict[str, list[float]]  # estimator -> |mean estimate - exact| at each S
    trajectories: dict[str, dict[int, Tensor]]  # estimator -> S -> (steps + 1, 2)

    def final_distances(self, last: int = 1) -> dict[str, dict[int, float]]:
        """|mu - t| at the end of each trajectory, averaged over its ``last`` iterates."""
        t = torch.tensor(TARGET, dtype=torch.float64)
        return {name: {s: (path[-last:] - t).norm(dim=1).mean().item() for s, path in paths.items()}
                for name, paths in self.trajectories.items()}

    def summary(self) -> dict:
        return {"sweep_samples": self.sweep, "trace_variance": self.variance, "abs_bias": self.bias,
                "final_distance": _by_name(self.final_distances()),
                "last_quarter_mean_distance": _by_name(self.final_distances(self._quarter)),
                "trajectories": {n: {str(s): p.tolist() for s, p in ps.items()} for n, ps in self.trajectories.items()}}

    def report(self) -> str:
        c, names = self.config, list(self.variance)
        lines = [f"trace of the gradient covariance at mu = {c.start} ({c.reps} repetitions; exact gradient "
                 f"{exact_gradient(torch.tensor(c.start, dtype=torch.float64)).tolist()})",
                 "       S | " + " | ".join(f"{n:>15s}" for n in names)]
        for i, s in enumerate(self.sweep):
            lines.append(f"  {s:6d} | " + " | ".join(f"{self.variance[n][i]:15.4f}" for n in names))
        lines.append(f"distance |mu - (5, 5)| after {c.steps} SGD steps (lr {c.lr}) from {c.start}: final "
                     f"(mean over the last {self._quarter} iterates)")
        lines.append("       S | " + " | ".join(f"{n:>18s}" for n in names))
        final, late = self.final_distances(), self.final_distances(self._quarter)
        for s in c.samples:
            lines.append(f"  {s:6d} | " + " | ".join(f"{final[n][s]:8.4f} ({late[n][s]:7.4f})" for n in names))
        return "\n".join(lines)

    @property
    def _quarter(self) -> int:
        return max(1, self.config.steps // 4)


def _by_name(distances: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
    return {name: {str(s): d for s, d in ds.items()} for name, ds in distances.items()}


def sweep_values(max_samples: int) -> list[int]:
    """1, 3, 10, 30, 100, ... up to ``max_samples`` (and ``max_samples`` itself)."""
    values, v = [], 1
    while v < max_samples:
        values += [v, 3 * v] if 3 * v < max_samples else [v]
        v *= 10
    return values + [max_samples]


def run_gradients(config: GradientsConfig) -> GradientsResult:
    """Variance sweep at mu = start, then SGD from start with every estimator and every S in ``samples``."""
    if len(config.start) != 2 or not config.samples or min(config.samples) < 1 or config.max_samples < 1:
        raise UsageError(f"gradients: start={config.start} must be 2 numbers and samples={config.samples}, "
                         f"max_samples={config.max_samples} positive")
    gen = torch.Generator().manual_seed(config.seed)
    sweep = sweep_values(config.max_samples)
    exact = exact_gradient(torch.tensor(config.start, dtype=torch.float64))
    variance, bias = {}, {}
    for name, est in ESTIMATORS.items():
        stats = [gradient_stats(est, config.start, s, config.reps, gen) for s in sweep]
        variance[name] = [cov.trace().item() for _, cov in stats]
        bias[name] = [(mean - exact).norm().item() for mean, _ in stats]
    trajectories = {name: {s: sgd_trajectory(est, config.start, s, config.steps, config.lr, gen)
                           for s in config.samples} for name, est in ESTIMATORS.items()}
    return GradientsResult(config, sweep, variance, bias, trajectories)


def plot(result: GradientsResult, png: str | Path) -> Path:
    """One panel of SGD trajectories per estimator (over the loss contours), then trace-variance vs S."""
    plt = pyplot()
    names = list(result.trajectories)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 4.2))
    start = result.config.start
    lo, hi = min(*start, TARGET[0]) - 3, max(*start, TARGET[0]) + 3
    grid = torch.linspace(lo, hi, 100)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    loss = objective(torch.stack([gx, gy], -1)) + 2  # (100, 100) L(mu)
    colors = plt.cm.viridis(torch.linspace(0, 0.85, len(result.config.samples)).numpy())
    for ax, name in zip(axes, names, strict=False):
        ax.contour(gx.numpy(), gy.numpy(), loss.numpy(), levels=12, colors="0.8", linewidths=0.6)
        for color, (s, path) in zip(colors, result.trajectories[name].items(), strict=True):
            ax.plot(*path.numpy().T, "-", color=color, lw=1, label=f"S = {s}")
        ax.plot(*start, "ko", ms=5)
        ax.plot(*TARGET, "r*", ms=12)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal", title=f"{name} (lr {result.config.lr})")
        ax.legend(fontsize=7, loc="upper left")
    ax = axes[-1]
    for name in names:
        ax.loglog(result.sweep, result.variance[name], "o-", label=name)
    ax.loglog(result.sweep, [8 / s for s in result.sweep], "k--", lw=0.8, label="pathwise theory 8/S")
    ax.set(xlabel="samples S", ylabel="trace Cov[gradient estimate]", title=f"variance at mu = {start}")
    ax.legend(fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    return save(fig, png)
