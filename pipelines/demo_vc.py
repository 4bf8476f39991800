"""Demo stages for voice conversion and phoneme probing, on the speaker-conditioned speech VQ-VAE that
the speech stage trained (see ``pipelines/demo.py``).

* ``vc``: train the independent speaker classifier on real audio, convert every held-out utterance to
  two other speakers, and score target accuracy and leakage (WAVs of a few conversions in the report).
* ``probe``: map the speech model's codes to phones (the 2017 protocol and the further measures),
  against k-means on MFCCs and a randomly initialised encoder.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from pipelines import evaluate_vc, probe, train_classifier

log = logging.getLogger("audiolvm.demo")
CLASSIFIER = "configs/demo/speaker_classifier.yaml"


def run_vc(out: Path, classifier_steps: int | None = None) -> dict:
    """Train the classifier, then convert and score; returns what the report shows."""
    t0 = time.time()
    log.info("[vc 1/2] training the speaker classifier on real audio")
    overrides = [f"train.out_dir={out / 'speaker_classifier'}"]
    overrides += [f"train.max_steps={classifier_steps}"] if classifier_steps else []
    train_classifier.run(argparse.Namespace(config=CLASSIFIER, overrides=overrides, resume=False, stop_after=None,
                                            time_limit=None))
    log.info("[vc 2/2] converting held-out utterances to two other speakers")
    evaluate_vc.run(argparse.Namespace(checkpoint=str(out / "speech_vqvae"), classifier=str(out / "speaker_classifier"),
                                       data=None, n_utterances=0, targets=2, level=0, out=str(out / "vc"), seed=0,
                                       examples=3, references=3, pitch="map"))
    classifier = json.loads((out / "speaker_classifier" / "eval.json").read_text())["held_out_utterances"]
    return {"seconds": time.time() - t0, "classifier": classifier,
            "table": (out / "vc" / "vc.md").read_text(),
            "examples": sorted(p.name for p in (out / "vc" / "examples").glob("*.wav"))}


def run_probe(out: Path) -> dict:
    t0 = time.time()
    log.info("[probe] phone probe of the speech codes against MFCC k-means and a random encoder")
    probe.run(argparse.Namespace(checkpoint=str(out / "speech_vqvae"), data=None, levels=None,
                                 out=str(out / "probe"), seed=0, max_frames=20000, phone_source="auto",
                                 unknown_phone=None, no_random=False, progress=False))
    return {"seconds": time.time() - t0, "table": (out / "probe" / "probe.md").read_text()}


def _demote(markdown: str) -> list[str]:
    """A sub-report's lines with its headings moved two levels down, to sit inside the demo report."""
    return [("##" + line) if line.startswith("#") else line for line in markdown.splitlines()]


def report_lines(vc: dict | None, probed: dict | None) -> list[str]:
    lines: list[str] = []
    if vc:
        c = vc["classifier"]
        lines += ["## Voice conversion", "",
                  f"Speaker classifier (log-mel CNN, real audio only): {c['accuracy']:.3f} accuracy on {c['n']} "
                  f"held-out real utterances. Conversion scored in {vc['seconds']:.0f} s; bar plot "
                  "`vc/vc_accuracy.png`; converted examples in `vc/examples/`: " + ", ".join(vc["examples"]), ""]
        lines += _demote(vc["table"]) + [""]
    if probed:
        lines += ["## Phoneme probe of the speech codes", "",
                  f"{probed['seconds']:.0f} s; confusion matrix of the best level in `probe/`.", ""]
        lines += _demote(probed["table"]) + [""]
    return lines
