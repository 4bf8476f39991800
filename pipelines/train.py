"""Train a model from a YAML config, with ``key=value`` overrides.

Examples:
  audiolvm train configs/speech_vqvae.yaml
  audiolvm train configs/tiny/speech_vqvae.yaml train.max_steps=200 train.out_dir=runs/try
  audiolvm train configs/speech_vqvae.yaml --resume        # continue the run in train.out_dir
  accelerate launch --num_processes 2 -m audiolvm_pipelines.cli train configs/speech_vqvae.yaml
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiolvm.builders import build_datasets, build_model, build_objective, resolve_audio_config
from audiolvm.config import KIND_KEY, config_to_dict, load_config
from audiolvm.core.errors import UsageError
from audiolvm.core.files import read_json
from audiolvm.core.seed import seed_everything
from audiolvm.data import skip_summary
from audiolvm.engine import FitResult, Trainer

HELP = "train a model from a config"
log = logging.getLogger("audiolvm.train")


@dataclass
class TrainedRun:
    """What a training command's ``execute`` computed: the config as resolved and saved to the run's config.json,
    and the trainer's result (step, run folder, last losses)."""

    cfg: Any
    fit: FitResult


def add_training_arguments(p: argparse.ArgumentParser, config_help: str = "YAML config (may name a 'base:' it "
                           "overrides)", overrides_help: str = "key=value overrides, e.g. train.max_steps=100") -> None:
    """The arguments every training command takes: the config, overrides, --resume and --stop-after."""
    p.add_argument("config", help=config_help)
    p.add_argument("overrides", nargs="*", help=overrides_help)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in train.out_dir")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop (with a checkpoint) after N steps of this call; --resume continues")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop (with a checkpoint) at the first log point after this many minutes of training in "
                        "this call (a job's wall-clock limit, or runs compared at equal time); --resume continues")


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Trainer.fit`` keywords from the arguments of :func:`add_training_arguments`."""
    minutes = args.time_limit
    if minutes is not None and minutes <= 0:
        raise UsageError(f"--time-limit {minutes}: give a positive number of minutes")
    return {"resume": args.resume, "stop_after": args.stop_after,
            "time_limit": minutes * 60 if minutes is not None else None}


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p)


def progress_keys(num_levels: int, pitch: bool = False, adversarial: bool = False) -> tuple[str, ...]:
    extra = ("pitch/f0",) if pitch else ()
    extra += ("loss/disc",) if adversarial else ()
    if num_levels == 1:
        return ("loss", "vq/perplexity", *extra)
    return ("loss", *(f"l{i}/vq/perplexity" for i in range(num_levels)), *extra)


def warn_if_resumed_config_differs(cfg: Any, resume: bool) -> None:
    """On --resume, say so when the run folder's config.json is not the config given now."""
    saved, now = Path(cfg.train.out_dir) / "config.json", config_to_dict(cfg)
    if not (resume and saved.is_file()):
        return
    old = read_json(saved, "delete it; the run rewrites it")
    if isinstance(old, dict):
        old.setdefault(KIND_KEY, now.get(KIND_KEY))  # a run saved before runs recorded their kind
    if old != now:
        log.warning("%s differs from the config given now; resuming with the one given now", saved)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    train_ds, valid_ds = build_datasets(cfg)
    cfg = resolve_audio_config(cfg, train_ds, valid_ds)
    warn_if_resumed_config_differs(cfg, args.resume)
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    model = build_model(cfg.model, cfg.data.sample_rate)
    trainer = Trainer(
        model, build_objective(cfg), train_ds, cfg.train, batch_size=cfg.data.batch_size,
        valid_data=valid_ds, num_workers=cfg.data.num_workers, run_config=config_to_dict(cfg),
        progress_keys=progress_keys(cfg.model.num_levels, bool(cfg.model.pitch.levels), bool(cfg.adv.discriminators)),
    )
    if trainer.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        log.info("%s: %d train / %d valid items, %.2fM parameters, hops %s, out %s", cfg.name,
                 len(train_ds), len(valid_ds or []), n_params / 1e6, cfg.model.hops, cfg.train.out_dir)
    result = trainer.fit(**fit_options(args))
    if trainer.is_main:
        loaded = [ds.skipped for ds in (train_ds, valid_ds) if ds is not None]
        if train_ds.reader.skipped or any(loaded):
            log.warning("data %s: at scan time %s; while training %s", cfg.data.root,
                        skip_summary(train_ds.reader.skipped), skip_summary(*loaded))
        shown = {k: round(v, 4) for k, v in result.last_valid.items()}
        log.info("done at step %d; checkpoint %s; valid %s", result.state.step, result.last_checkpoint, shown)
    return 0
