"""Train a gated PixelCNN prior over the code maps of a trained image VQ-VAE (VQ-VAE paper, section 4.1).

The VQ-VAE run named by ``vqvae:`` encodes its own train and test splits once (in memory; no images are
read again), and the 2-D gated PixelCNN learns ``p(codes)`` in raster order, class-conditional when the
images have labels and ``prior.use_labels`` is on. ``audiolvm evaluate-image --checkpoint <this run>``
then reports the test NLL of the codes and decodes prior samples to images.

Examples:
  audiolvm train-image configs/image/vqvae_digits.yaml
  audiolvm train-image-prior configs/image/pixelcnn_vqvae_digits.yaml
  audiolvm train-image-prior configs/image/pixelcnn_vqvae_digits.yaml prior.use_labels=false train.out_dir=runs/uncond
"""

from __future__ import annotations

import argparse

from audiolvm.builders.training import TrainedRun, image_prior_recipe, train
from audiolvm.config import ImagePriorExperimentConfig, load_config
from audiolvm_pipelines.train import add_training_arguments, fit_options

HELP = "train a 2-D gated PixelCNN prior over an image VQ-VAE's code maps"


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config naming the VQ-VAE run ('vqvae:'), e.g. "
                           "configs/image/pixelcnn_vqvae_digits.yaml",
                           "key=value overrides, e.g. train.max_steps=100 vqvae=runs/my_vqvae")


def execute(args: argparse.Namespace) -> TrainedRun:
    """``run`` returning the resolved config (the run's config.json), the engine's result and the prior."""
    cfg = load_config(args.config, args.overrides, schema=ImagePriorExperimentConfig)
    return train(image_prior_recipe(cfg), **fit_options(args))


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
