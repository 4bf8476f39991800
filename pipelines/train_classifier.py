"""Train the independent speaker classifier that scores voice conversion, on real training audio only.

The training set's speakers are written into the saved config (``model.speakers``). After training,
the classifier is scored on the whole held-out utterances of the split (``<out_dir>/eval.json``).

Examples:
  audiolvm train-classifier configs/demo/speaker_classifier.yaml
  audiolvm train-classifier configs/demo/speaker_classifier.yaml data.root=/corpora/VCTK-Corpus-0.92 \\
      train.max_steps=3000 train.out_dir=runs/vctk_classifier
  audiolvm train-classifier configs/demo/speaker_classifier.yaml --resume
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from audiolvm.builders import build_classifier, build_datasets, resolve_classifier_config
from audiolvm.config import ClassifierExperimentConfig, config_to_dict, load_config
from audiolvm.core.files import atomic_write_json
from audiolvm.core.seed import seed_everything
from audiolvm.engine import Trainer
from audiolvm.eval.speaker import SpeakerAccuracy, utterance_accuracy
from audiolvm.models.classifier import ClassificationObjective
from audiolvm_pipelines.train import TrainedRun, add_training_arguments, fit_options, warn_if_resumed_config_differs

HELP = "train the speaker classifier used by evaluate-vc (real audio only)"
log = logging.getLogger("audiolvm.train_classifier")


@dataclass
class ClassifierRun(TrainedRun):
    """A trained classifier's run and its whole-utterance accuracy on the held-out split (eval.json), None off the
    main process or without held-out utterances."""

    held_out: SpeakerAccuracy | None = None


def add_parser(p: argparse.ArgumentParser) -> None:
    add_training_arguments(p, "classifier YAML config, e.g. configs/demo/speaker_classifier.yaml")


def execute(args: argparse.Namespace) -> ClassifierRun:
    """``run`` returning the resolved config, the trainer's result and the held-out accuracy it wrote."""
    cfg = load_config(args.config, args.overrides, schema=ClassifierExperimentConfig)
    train_ds, valid_ds = build_datasets(cfg)
    cfg = resolve_classifier_config(cfg, train_ds, valid_ds)
    warn_if_resumed_config_differs(cfg, args.resume)
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only
    model = build_classifier(cfg.model, cfg.data.sample_rate)
    trainer = Trainer(model, ClassificationObjective(), train_ds, cfg.train, batch_size=cfg.data.batch_size,
                      valid_data=valid_ds, num_workers=cfg.data.num_workers, run_config=config_to_dict(cfg),
                      progress_keys=("loss", "accuracy"))
    if trainer.is_main:
        log.info("%s: %d speakers, %d train / %d valid items, %.2fM parameters, out %s", cfg.name,
                 len(cfg.model.speakers), len(train_ds), len(valid_ds or []),
                 sum(p.numel() for p in model.parameters()) / 1e6, cfg.train.out_dir)
    result = trainer.fit(**fit_options(args))
    if not trainer.is_main:
        return ClassifierRun(cfg, result)
    log.info("done at step %d; checkpoint %s; valid crops %s", result.state.step, result.last_checkpoint,
             {k: round(v, 4) for k, v in result.last_valid.items()})
    if valid_ds is None:
        log.warning("no held-out utterances (data.valid_fraction=%s); eval.json not written", cfg.data.valid_fraction)
        return ClassifierRun(cfg, result)
    acc = utterance_accuracy(trainer.unwrapped_model(), train_ds.reader, valid_ds.entries, cfg.data.sample_rate)
    atomic_write_json(result.out_dir / "eval.json", {"step": result.state.step, "held_out_utterances": acc.to_dict()})
    log.info("held-out accuracy %.3f over %d whole utterances; wrote %s", acc.accuracy, acc.n,
             result.out_dir / "eval.json")
    return ClassifierRun(cfg, result, acc)


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
