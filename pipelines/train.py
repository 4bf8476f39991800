"""Train a model from a YAML config, with ``key=value`` overrides.

Examples:
  audiolvm train configs/speech_vqvae.yaml
  audiolvm train configs/tiny/speech_vqvae.yaml train.max_steps=200 train.out_dir=runs/try
  audiolvm train configs/speech_vqvae.yaml --resume        # continue the run in train.out_dir
  accelerate launch --num_processes 2 -m audiolvm_pipelines.cli train configs/speech_vqvae.yaml
"""

from __future__ import annotations

import argparse
from typing import Any

from audiolvm.builders.training import TrainedRun, audio_recipe, train
from audiolvm.config import load_config
from audiolvm.core.errors import UsageError

HELP = "train a model from a config"


def add_training_arguments(p: argparse.ArgumentParser, config_help: str = "YAML config (may name a 'base:' it "
                           "overrides)", overrides_help: str = "key=value overrides, e.g. train.max_steps=100") -> None:
    """The arguments every training command takes: the config, overrides, --resume, --stop-after, --time-limit."""
    p.add_argument("config", help=config_help)
    p.add_argument("overrides", nargs="*", help=overrides_help)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in train.out_dir")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop (with a checkpoint) after N steps of this call; --resume continues")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop (with a checkpoint) at the first log point after this many minutes of training in "
                        "this call (a job's wall-clock limit, or runs compared at equal time); --resume continues")


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`audiolvm.builders.training.train` keywords from the arguments of :func:`add_training_arguments`."""
    minutes = args.time_limit
    if minutes is not None and minutes <= 0:
        raise UsageError(f"--time-limit {minutes}: give a positive number of minutes")
    return {"resume": args.resume, "stop_after": args.stop_after,
            "time_limit": minutes * 60 if minutes is not None else None}


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p)


def execute(args: argparse.Namespace) -> TrainedRun:
    """``run`` returning the resolved config (the run's config.json), the engine's result and the model."""
    return train(audio_recipe(load_config(args.config, args.overrides)), **fit_options(args))


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
