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
from typing import cast

from audiolvm.builders.training import TrainedRun, classifier_recipe, train
from audiolvm.config import ClassifierExperimentConfig, load_config
from audiolvm.core.files import atomic_write_json
from audiolvm.data import CropDataset
from audiolvm.eval.speaker import SpeakerAccuracy, utterance_accuracy
from audiolvm.models.classifier import SpeakerClassifier
from audiolvm_pipelines.train import add_training_arguments, fit_options

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
    recipe = classifier_recipe(load_config(args.config, args.overrides, schema=ClassifierExperimentConfig))
    trained = train(recipe, **fit_options(args))
    cfg, result = trained.cfg, trained.fit
    train_ds, valid_ds = cast(CropDataset, recipe.train_data), cast("CropDataset | None", recipe.valid_data)
    done = ClassifierRun(cfg, result, trained.model, trained.is_main)
    if not trained.is_main:
        return done
    if valid_ds is None:
        log.warning("no held-out utterances (data.valid_fraction=%s); eval.json not written", cfg.data.valid_fraction)
        return done
    classifier = cast(SpeakerClassifier, trained.model)
    done.held_out = acc = utterance_accuracy(classifier, train_ds.reader, valid_ds.entries, cfg.data.sample_rate)
    atomic_write_json(result.out_dir / "eval.json", {"step": result.state.step, "held_out_utterances": acc.to_dict()})
    log.info("held-out accuracy %.3f over %d whole utterances; wrote %s", acc.accuracy, acc.n,
             result.out_dir / "eval.json")
    return done


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
