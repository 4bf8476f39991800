"""Train a prior over codes written by ``audiolvm encode`` (no audio is read).

Examples:
  audiolvm train-prior configs/demo/prior_top.yaml
  audiolvm train-prior configs/demo/upsampler.yaml codes.root=outputs/demo/music_codes train.max_steps=500
  audiolvm train-prior configs/demo/prior_top.yaml --stop-after 100     # then --resume continues
"""

from __future__ import annotations

import argparse
import logging

from audiolvm.builders import build_prior, build_prior_datasets, build_prior_objective
from audiolvm.config import PriorExperimentConfig, config_to_dict, load_config
from audiolvm.core.seed import seed_everything
from audiolvm.engine import Trainer
from audiolvm_pipelines.train import add_training_arguments, fit_options, warn_if_resumed_config_differs

HELP = "train a prior (transformer, upsampler, PixelCNN) on codes on disk"
log = logging.getLogger("audiolvm.train_prior")


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "prior YAML config, e.g. configs/demo/prior_top.yaml")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides, schema=PriorExperimentConfig)
    cfg, train_ds, valid_ds = build_prior_datasets(cfg)
    warn_if_resumed_config_differs(cfg, args.resume)
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    prior = build_prior(cfg.prior)
    c = cfg.codes
    trainer = Trainer(prior, build_prior_objective(cfg.prior), train_ds, cfg.train, batch_size=c.batch_size,
                      valid_data=valid_ds, num_workers=c.num_workers, run_config=config_to_dict(cfg),
                      progress_keys=("loss", "bits_per_code"))
    if trainer.is_main:
        log.info("%s prior on level %d of %s: %d train / %d valid items, %.2fM parameters", cfg.prior.kind,
                 c.level, c.root, len(train_ds), len(valid_ds), sum(p.numel() for p in prior.parameters()) / 1e6)
    result = trainer.fit(**fit_options(args))
    if trainer.is_main:
        log.info("done at step %d; valid %s", result.state.step, {k: round(v, 4) for k, v in result.last_valid.items()})
    return 0
