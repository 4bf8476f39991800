"""Estimator lab: small experiments with exact answers. Each writes <out>/<name>.png and <name>.json
(its options and numbers) and prints its numbers; every one is deterministic under --seed.

  mog        exact maximum likelihood of a 3-component Gaussian mixture (full or diagonal covariance)
  is         log p(x) by prior sampling vs importance sampling, bias and std against K
  gradients  score-function vs pathwise gradient estimators: SGD trajectories and variance against S
  iwae-k     the IWAE bound L_k against k (1 .. 5000) on a VAE trained on the digits, beside log p(x)
  collapse   posterior collapse with a PixelCNN decoder: no remedy vs KL warm-up vs free bits

Examples:
  audiolvm lab mog
  audiolvm lab mog --covariance diag --steps 300 --out outputs/lab
  audiolvm lab is --reps 1000 --max-k 100000 --steps 100
  audiolvm lab gradients --samples 1 10 100 --lr 0.01 --start -2 0
  audiolvm lab iwae-k --steps 2000
  audiolvm lab collapse --free-bits 0.25
  audiolvm lab gradients --help          (every option of one experiment)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from audiolvm.lab import EXPERIMENTS, run_experiment

HELP = "estimator lab: mixture MLE, importance sampling, gradient estimators, IWAE bound, posterior collapse"
log = logging.getLogger("audiolvm.lab")


def add_config_arguments(p: argparse.ArgumentParser, config: type) -> None:
    """One ``--option`` per field of the ``config`` dataclass, typed by its default."""
    for f in dataclasses.fields(config):
        default, meta = f.default, dict(f.metadata)
        kwargs: dict = {"default": default, "help": f"{meta.get('help', '')} (default: {default})"}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kwargs.update(type=type(default[0]), nargs=meta.get("nargs", "+"))
        else:
            kwargs.update(type=type(default), choices=meta.get("choices"))
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **kwargs)


def add_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, exp in EXPERIMENTS.items():
        q = sub.add_parser(name, help=exp.description, description=exp.description)
        q.add_argument("--out", default="outputs/lab", help="folder for <name>.png and <name>.json")
        add_config_arguments(q, exp.config)


def run(args: argparse.Namespace) -> int:
    exp = EXPERIMENTS[args.experiment]
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(exp.config)}
    config = exp.config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    result, png, record = run_experiment(exp.name, config, args.out)
    print(result.report())
    log.info("wrote %s and %s", png, record)
    return 0
