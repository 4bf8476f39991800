"""The lab's experiments by name: each is a config dataclass, a pure ``run(config) -> result`` and a
``plot(result, png)``. A new experiment (e.g. the IWAE bound against k on a trained model) is one module
with those three and one ``register(...)`` call below; the CLI's options come from the config's fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from audiolvm.core.errors import UnknownNameError, UsageError
from audiolvm.core.files import atomic_write_json
from audiolvm.lab import collapse, gradients, importance, iwae_bound, mog


class LabResult(Protocol):
    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-serialisable."""

    def report(self) -> str:
        """The numbers as a few printable lines."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """config: a dataclass whose fields (defaults, ``metadata["help"]``, optional ``"choices"`` and
    ``"nargs"``) are the experiment's options; run: config -> result; plot: (result, png) -> png."""

    name: str
    description: str
    config: type
    run: Callable[[Any], LabResult]
    plot: Callable[[Any, Path], Path]


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    if experiment.name in EXPERIMENTS:
        raise UsageError(f"lab experiment {experiment.name!r} is already registered")
    if not dataclasses.is_dataclass(experiment.config):
        raise TypeError(f"lab experiment {experiment.name!r}: config must be a dataclass type")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def run_experiment(name: str, config: Any, out: str | Path) -> tuple[LabResult, Path, Path]:
    """Run one experiment; write ``<out>/<name>.png`` and ``<out>/<name>.json`` (config + numbers)."""
    if name not in EXPERIMENTS:
        raise UnknownNameError(f"unknown lab experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    result = exp.run(config)
    out = Path(out)
    png = exp.plot(result, out / f"{name}.png")
    record = {"experiment": name, "config": dataclasses.asdict(config), "results": result.summary()}
    return result, png, atomic_write_json(out / f"{name}.json", record)


register(Experiment(
    "mog", "exact maximum likelihood of a 3-component 2-D Gaussian mixture (full Cholesky or diagonal "
           "covariance) by Adam on the logsumexp marginal; recovered means vs the true mixture",
    mog.MixtureConfig, mog.run_mog, mog.plot))
register(Experiment(
    "is", "log p(x) of a linear-Gaussian latent model by prior sampling vs importance sampling from an "
          "ELBO-fitted Gaussian: bias and std against K = 1 .. 10^4",
    importance.ImportanceConfig, importance.run_importance, importance.plot))
register(Experiment(
    "gradients", "score-function (REINFORCE, with and without a leave-one-out baseline) vs pathwise "
                 "gradients of E|x - (5,5)|^2, x ~ N(mu, I): SGD trajectories and variance against S",
    gradients.GradientsConfig, gradients.run_gradients, gradients.plot))
register(Experiment(
    "iwae-k", "the importance-weighted bound L_k against k = 1 .. 5000 on a small VAE trained on binarized digits, "
              "with an independent K = 5000 importance-sampled log p(x) as the reference",
    iwae_bound.IWAEConfig, iwae_bound.run_iwae_k, iwae_bound.plot))
register(Experiment(
    "collapse", "posterior collapse of a VAE with a PixelCNN decoder on binarized digits under no remedy, linear "
                "KL warm-up and free bits: KL during training, active units, I(x; z), ELBO, IS NLL",
    collapse.CollapseConfig, collapse.run_collapse, collapse.plot))
