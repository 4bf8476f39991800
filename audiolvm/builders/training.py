"""One training recipe for every family.

A family says what it trains in a :class:`Recipe`: the config as resolved from its data (saved as the run's
``config.json``), the train / held-out data, how to build the model and its step function, and what the progress
bar and the first log line show. :func:`train` is the one sequence every training command runs: warn when a resumed
run's config differs, seed, build the model (its initial weights depend on ``train.seed`` only), then the step
function (an adversarial one draws its discriminators from the same seed), then fit on the engine.

The recipes by run kind: :func:`audio_recipe` (the audio VQ-VAE), :func:`classifier_recipe` (the speaker
classifier), :func:`prior_recipe` (priors over codes on disk), :func:`image_recipe` (the VAE family and the image
VQ-VAE), :func:`image_prior_recipe` (a PixelCNN over an image VQ-VAE's code maps).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from audiolvm.builders.audio import build_classifier, build_model, build_objective
from audiolvm.builders.audio_data import build_datasets, resolve_audio_config, resolve_classifier_config
from audiolvm.builders.image import (
    build_image_code_data,
    build_image_datasets,
    build_image_model,
    build_image_objective,
    resolve_image_config,
)
from audiolvm.builders.priors import build_prior, build_prior_datasets, build_prior_objective
from audiolvm.config import (
    KIND_KEY,
    ClassifierExperimentConfig,
    ExperimentConfig,
    ImageExperimentConfig,
    ImagePriorExperimentConfig,
    PriorExperimentConfig,
    config_to_dict,
)
from audiolvm.core.files import read_json
from audiolvm.core.seed import seed_everything
from audiolvm.data import skip_summary
from audiolvm.engine import FitResult, Trainer
from audiolvm.models.classifier import ClassificationObjective
from audiolvm.models.priors.objective import PriorObjective

log = logging.getLogger("audiolvm.train")


@dataclass
class Recipe:
    """What one family trains, and how. ``model`` is called after seeding, ``objective`` with the built model;
    ``describe`` gives the log line before training; ``after`` runs on the main process once training ends."""

    cfg: Any
    train_data: Any  # a map-style dataset (crops, code windows, code maps, images)
    valid_data: Any | None
    model: Callable[[], nn.Module]
    objective: Callable[[nn.Module], Any]  # a step function, or a step in phases (adversarial)
    batch_size: int
    num_workers: int
    progress_keys: tuple[str, ...]
    describe: Callable[[nn.Module], str]
    after: Callable[[], None] | None = None


@dataclass
class TrainedRun:
    """What :func:`train` computed: the resolved config (the run's config.json), the engine's result (step, run
    folder, last losses), the trained model without its distributed wrapper, and whether this is the main
    process (the one that writes files)."""

    cfg: Any
    fit: FitResult
    model: nn.Module
    is_main: bool = True


def parameters_m(model: nn.Module) -> float:
    """Millions of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def items(data: Any) -> int:
    """The number of items of a map-style dataset; 0 for none."""
    return 0 if data is None else len(data)


def warn_if_resumed_config_differs(cfg: Any, resume: bool) -> None:
    """On resume, say so when the run folder's config.json is not the config given now."""
    saved, now = Path(cfg.train.out_dir) / "config.json", config_to_dict(cfg)
    if not (resume and saved.is_file()):
        return
    old = read_json(saved, "delete it; the run rewrites it")
    if isinstance(old, dict):
        old.setdefault(KIND_KEY, now.get(KIND_KEY))  # a run saved before runs recorded their kind
    if old != now:
        log.warning("%s differs from the config given now; resuming with the one given now", saved)


def train(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
          time_limit: float | None = None) -> TrainedRun:
    """Train ``recipe`` on the engine (``time_limit`` in seconds); ``resume`` continues the run in
    ``train.out_dir``, ``stop_after`` stops with a checkpoint after that many steps of this call."""
    cfg = recipe.cfg
    warn_if_resumed_config_differs(cfg, resume)
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    model = recipe.model()
    trainer = Trainer(model, recipe.objective(model), recipe.train_data, cfg.train, batch_size=recipe.batch_size,
                      valid_data=recipe.valid_data, num_workers=recipe.num_workers, run_config=config_to_dict(cfg),
                      progress_keys=recipe.progress_keys)
    if trainer.is_main:
        log.info("%s", recipe.describe(model))
    result = trainer.fit(resume=resume, stop_after=stop_after, time_limit=time_limit)
    if trainer.is_main:
        shown = {k: round(v, 4) for k, v in result.last_valid.items()}
        log.info("done at step %d; checkpoint %s; valid %s", result.state.step, result.last_checkpoint, shown)
        if recipe.after is not None:
            recipe.after()
    return TrainedRun(cfg, result, trainer.unwrapped_model(), trainer.is_main)


# ------------------------------------------------------------------------------------------------ the recipes


def audio_progress_keys(num_levels: int, pitch: bool = False, adversarial: bool = False) -> tuple[str, ...]:
    """The audio VQ-VAE's progress line: the loss, each level's code perplexity, F0 and discriminator terms."""
    extra: tuple[str, ...] = ("pitch/f0",) if pitch else ()
    extra += ("loss/disc",) if adversarial else ()
    if num_levels == 1:
        return ("loss", "vq/perplexity", *extra)
    return ("loss", *(f"l{i}/vq/perplexity" for i in range(num_levels)), *extra)


def audio_recipe(cfg: ExperimentConfig) -> Recipe:
    """The audio VQ-VAE: crops of the corpus, the config filled from the training set (speakers, F0 stats)."""
    train_ds, valid_ds = build_datasets(cfg)
    cfg = resolve_audio_config(cfg, train_ds, valid_ds)

    def describe(model: nn.Module) -> str:
        return (f"{cfg.name}: {items(train_ds)} train / {items(valid_ds)} valid items, {parameters_m(model):.2f}M "
                f"parameters, hops {cfg.model.hops}, out {cfg.train.out_dir}")

    def after() -> None:  # corrupt files are skipped and counted, never a crash: say how many
        loaded = [ds.skipped for ds in (train_ds, valid_ds) if ds is not None]
        if train_ds.reader.skipped or any(loaded):
            log.warning("data %s: at scan time %s; while training %s", cfg.data.root,
                        skip_summary(train_ds.reader.skipped), skip_summary(*loaded))

    keys = audio_progress_keys(cfg.model.num_levels, bool(cfg.model.pitch.levels), bool(cfg.adv.discriminators))
    return Recipe(cfg, train_ds, valid_ds, lambda: build_model(cfg.model, cfg.data.sample_rate),
                  lambda _model: build_objective(cfg), cfg.data.batch_size, cfg.data.num_workers, keys, describe,
                  after)


def classifier_recipe(cfg: ClassifierExperimentConfig) -> Recipe:
    """The independent speaker classifier on real audio; its speakers come from the training set."""
    train_ds, valid_ds = build_datasets(cfg)
    cfg = resolve_classifier_config(cfg, train_ds, valid_ds)

    def describe(model: nn.Module) -> str:
        return (f"{cfg.name}: {len(cfg.model.speakers)} speakers, {items(train_ds)} train / {items(valid_ds)} "
                f"valid items, {parameters_m(model):.2f}M parameters, out {cfg.train.out_dir}")

    return Recipe(cfg, train_ds, valid_ds, lambda: build_classifier(cfg.model, cfg.data.sample_rate),
                  lambda _model: ClassificationObjective(), cfg.data.batch_size, cfg.data.num_workers,
                  ("loss", "accuracy"), describe)


def prior_recipe(cfg: PriorExperimentConfig) -> Recipe:
    """A prior over codes written by ``audiolvm encode``; no audio is read."""
    cfg, train_ds, valid_ds = build_prior_datasets(cfg)
    c = cfg.codes

    def describe(model: nn.Module) -> str:
        return (f"{cfg.prior.kind} prior on level {c.level} of {c.root}: {items(train_ds)} train / {items(valid_ds)} "
                f"valid items, {parameters_m(model):.2f}M parameters")

    return Recipe(cfg, train_ds, valid_ds, lambda: build_prior(cfg.prior),
                  lambda _model: build_prior_objective(cfg.prior), c.batch_size, c.num_workers,
                  ("loss", "bits_per_code"), describe)


IMAGE_PROGRESS = {"vqvae": ("loss", "vq/perplexity"), "m2": ("loss", "accuracy")}


def image_recipe(cfg: ImageExperimentConfig) -> Recipe:
    """The VAE family (VAE, beta-VAE, IWAE, conditional VAE, M2) and the image VQ-VAE."""
    train_ds, test_ds = build_image_datasets(cfg)
    cfg = resolve_image_config(cfg, train_ds)

    def describe(model: nn.Module) -> str:
        return (f"{cfg.name} ({cfg.model.kind}): {items(train_ds)} train / {items(test_ds)} test images of "
                f"{cfg.model.image_shape}, {parameters_m(model):.3f}M parameters, out {cfg.train.out_dir}")

    return Recipe(cfg, train_ds, test_ds, lambda: build_image_model(cfg.model),
                  lambda _model: build_image_objective(cfg), cfg.data.batch_size, cfg.data.num_workers,
                  IMAGE_PROGRESS.get(cfg.model.kind, ("loss", "elbo", "kl")), describe)


def image_prior_recipe(cfg: ImagePriorExperimentConfig) -> Recipe:
    """A 2-D gated PixelCNN over the code maps of the image VQ-VAE run ``cfg.vqvae`` (encoded once, in memory)."""
    data = build_image_code_data(cfg)
    cfg, train_ds, test_ds = data.cfg, data.codes["train"], data.codes["test"]

    def describe(model: nn.Module) -> str:
        shape = "x".join(map(str, train_ds.codes.shape[1:]))
        classes = f"{len(cfg.prior.labels)} classes" if cfg.prior.labels else "unconditional"
        return (f"{cfg.name}: pixelcnn2d over {shape} code maps of {cfg.prior.num_codes} codes from {cfg.vqvae} "
                f"({classes}), {items(train_ds)} train / {items(test_ds)} test maps, {parameters_m(model):.3f}M "
                "parameters")

    return Recipe(cfg, train_ds, test_ds, lambda: build_prior(cfg.prior),
                  lambda _model: PriorObjective(bool(cfg.prior.labels), False), cfg.batch_size, cfg.num_workers,
                  ("loss", "bits_per_code"), describe)
