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
import logging

from audiolvm.builders import build_image_code_data, build_prior
from audiolvm.config import ImagePriorExperimentConfig, config_to_dict, load_config
from audiolvm.core.seed import seed_everything
from audiolvm.engine import Trainer
from audiolvm.models.priors.objective import PriorObjective
from audiolvm_pipelines.train import TrainedRun, add_training_arguments, fit_options, warn_if_resumed_config_differs

HELP = "train a 2-D gated PixelCNN prior over an image VQ-VAE's code maps"
log = logging.getLogger("audiolvm.train_image_prior")


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config naming the VQ-VAE run ('vqvae:'), e.g. "
                           "configs/image/pixelcnn_vqvae_digits.yaml",
                           "key=value overrides, e.g. train.max_steps=100 vqvae=runs/my_vqvae")


def execute(args: argparse.Namespace) -> TrainedRun:
    """``run`` returning the resolved config (the run's config.json) and the trainer's result."""
    cfg = load_config(args.config, args.overrides, schema=ImagePriorExperimentConfig)
    data = build_image_code_data(cfg)
    cfg, train_ds, test_ds = data.cfg, data.codes["train"], data.codes["test"]
    warn_if_resumed_config_differs(cfg, args.resume)
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    prior = build_prior(cfg.prior)
    trainer = Trainer(prior, PriorObjective(bool(cfg.prior.labels), False), train_ds, cfg.train,
                      batch_size=cfg.batch_size, valid_data=test_ds, num_workers=cfg.num_workers,
                      run_config=config_to_dict(cfg), progress_keys=("loss", "bits_per_code"))
    if trainer.is_main:
        shape = tuple(train_ds.codes.shape[1:])
        log.info("%s: pixelcnn2d over %s code maps of %d codes from %s (%s), %d train / %d test maps, %.3fM "
                 "parameters", cfg.name, "x".join(map(str, shape)), cfg.prior.num_codes, cfg.vqvae,
                 f"{len(cfg.prior.labels)} classes" if cfg.prior.labels else "unconditional", len(train_ds),
                 len(test_ds), sum(p.numel() for p in prior.parameters()) / 1e6)
    result = trainer.fit(**fit_options(args))
    if trainer.is_main:
        log.info("done at step %d; test %s", result.state.step, {k: round(v, 4) for k, v in result.last_valid.items()})
    return TrainedRun(cfg, result)


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
