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
import logging

from audiolvm.builders import build_image_datasets, build_image_model, build_image_objective, resolve_image_config
from audiolvm.config import ImageExperimentConfig, config_to_dict, load_config
from audiolvm.core.seed import seed_everything
from audiolvm.engine import Trainer
from audiolvm_pipelines.train import TrainedRun, add_training_arguments, fit_options, warn_if_resumed_config_differs

HELP = "train an image VAE / IWAE / conditional VAE / M2 / VQ-VAE from a config"
log = logging.getLogger("audiolvm.train_image")
PROGRESS = {"vqvae": ("loss", "vq/perplexity"), "m2": ("loss", "accuracy")}


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "YAML config (may name a 'base:' it overrides), e.g. configs/image/vae_digits.yaml",
                           "key=value overrides, e.g. train.max_steps=100 model.samples=5")


def execute(args: argparse.Namespace) -> TrainedRun:
    """``run`` returning the resolved config (the run's config.json) and the trainer's result."""
    cfg = load_config(args.config, args.overrides, schema=ImageExperimentConfig)
    train_ds, test_ds = build_image_datasets(cfg)
    cfg = resolve_image_config(cfg, train_ds)
    warn_if_resumed_config_differs(cfg, args.resume)
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    model = build_image_model(cfg.model)
    trainer = Trainer(model, build_image_objective(cfg), train_ds, cfg.train, batch_size=cfg.data.batch_size,
                      valid_data=test_ds, num_workers=cfg.data.num_workers, run_config=config_to_dict(cfg),
                      progress_keys=PROGRESS.get(cfg.model.kind, ("loss", "elbo", "kl")))
    if trainer.is_main:
        log.info("%s (%s): %d train / %d test images of %s, %.3fM parameters, out %s", cfg.name, cfg.model.kind,
                 len(train_ds), len(test_ds), cfg.model.image_shape,
                 sum(p.numel() for p in model.parameters()) / 1e6, cfg.train.out_dir)
    result = trainer.fit(**fit_options(args))
    if trainer.is_main:
        log.info("done at step %d; test %s", result.state.step, {k: round(v, 3) for k, v in result.last_valid.items()})
    return TrainedRun(cfg, result)


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
