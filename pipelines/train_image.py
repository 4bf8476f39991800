"""Train an image latent-variable model (VAE, beta-VAE, IWAE, conditional VAE, M2, VQ-VAE) from a YAML
config, with ``key=value`` overrides. The run folder gets model.safetensors + config.json (read by
``audiolvm evaluate-image``), checkpoints, metrics.csv and curves.png.

Examples:
  audiolvm train-image configs/image/vae_digits.yaml
  audiolvm train-image configs/image/iwae_digits.yaml model.samples=50 train.out_dir=runs/iwae50
  audiolvm train-image configs/image/vae_digits.yaml loss.warmup.kind=linear loss.warmup.steps=1000
  audiolvm train-image configs/image/beta_vae_dsprites.yaml loss.beta=8
  audiolvm train-image configs/image/vae_digits.yaml --resume      # continue the run in train.out_dir
"""

from __future__ import annotations

import argparse

from audiolvm.builders.training import TrainedRun, image_recipe, train
from audiolvm.config import ImageExperimentConfig, load_config
from audiolvm_pipelines.train import add_training_arguments, fit_options

HELP = "train an image VAE / IWAE / conditional VAE / M2 / VQ-VAE from a config"


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config (may name a 'base:' it overrides), e.g. configs/image/vae_digits.yaml",
                           "key=value overrides, e.g. train.max_steps=100 model.samples=5")


def execute(args: argparse.Namespace) -> TrainedRun:
    """``run`` returning the resolved config (the run's config.json), the engine's result and the model."""
    cfg = load_config(args.config, args.overrides, schema=ImageExperimentConfig)
    return train(image_recipe(cfg), **fit_options(args))


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
