"""Train a prior over codes written by ``audiolvm encode`` (no audio is read).

Examples:
  audiolvm train-prior configs/demo/prior_top.yaml
  audiolvm train-prior configs/demo/upsampler.yaml codes.root=outputs/demo/music_codes train.max_steps=500
  audiolvm train-prior configs/demo/prior_top.yaml --stop-after 100     # then --resume continues
"""

from __future__ import annotations

import argparse

from audiolvm.builders.training import TrainedRun, prior_recipe, train
from audiolvm.config import PriorExperimentConfig, load_config
from audiolvm_pipelines.train import add_training_arguments, fit_options

HELP = "train a prior (transformer, upsampler, PixelCNN) on codes on disk"


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "prior YAML config, e.g. configs/demo/prior_top.yaml")


def execute(args: argparse.Namespace) -> TrainedRun:
    """``run`` returning the resolved config (the run's config.json), the engine's result and the prior."""
    cfg = load_config(args.config, args.overrides, schema=PriorExperimentConfig)
    return train(prior_recipe(cfg), **fit_options(args))


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
