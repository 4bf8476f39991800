"""Train a prior over codes written by ``audiolvm encode`` (no audio is read).

Examples:
  audiolvm train-prior configs/demo/prior_top.yaml
  audiolvm train-prior configs/demo/upsampler.yaml codes.root=outputs/demo/music_codes train.max_steps=500
"""

from __future__ import annotations

import argparse
import logging

from audiolvm.builders import build_prior, resolve_prior_config
from audiolvm.config import PriorExperimentConfig, config_to_dict, load_config
from audiolvm.core.seed import seed_everything
from audiolvm.data.codes import CodeStore, CodeWindowDataset
from audiolvm.engine import Trainer
from audiolvm.models.priors.objective import PriorObjective

HELP = "train a prior (transformer, upsampler, PixelCNN) on codes on disk"
log = logging.getLogger("audiolvm.train_prior")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="prior YAML config")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=100")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in train.out_dir")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides, schema=PriorExperimentConfig)
    store = CodeStore(cfg.codes.root)
    cfg = resolve_prior_config(cfg, store)
    c = cfg.codes
    datasets = [CodeWindowDataset(store, c.level, c.window, split, cfg.train.seed, c.upper_level,
                                  cfg.prior.labels or None) for split in (c.train_split, c.valid_split)]
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    prior = build_prior(cfg.prior)
    trainer = Trainer(prior, PriorObjective(bool(cfg.prior.labels), c.upper_level is not None), datasets[0],
                      cfg.train, batch_size=c.batch_size, valid_data=datasets[1], num_workers=c.num_workers,
                      run_config=config_to_dict(cfg), progress_keys=("loss", "bits_per_code"))
    if trainer.is_main:
        log.info("%s prior on level %d of %s: %d train / %d valid items, %.2fM parameters", cfg.prior.kind,
                 c.level, c.root, len(datasets[0]), len(datasets[1]), sum(p.numel() for p in prior.parameters()) / 1e6)
    result = trainer.fit(resume=args.resume)
    if trainer.is_main:
        log.info("done at step %d; valid %s", result.state.step, {k: round(v, 4) for k, v in result.last_valid.items()})
    return 0
