"""Demo stages for voice conversion and phoneme probing, on the speaker-conditioned speech VQ-VAE that
the speech stage trained (see ``pipelines/demo.py``).

* ``vc``: train the independent speaker classifier on real audio, convert every held-out utterance to
  two other speakers, and score target accuracy and leakage (WAVs of a few conversions in the report); then
  convert to the voice the model never heard (``data.unseen_speakers``) from a reference clip and after
  enrolment on 1 and on 5 clips, and that voice's utterances to seen voices.
* ``probe``: map the speech model's codes to phones (the 2017 protocol and the further measures),
  against k-means on MFCCs and a randomly initialised encoder.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from audiolvm_pipelines import evaluate_vc, probe, train_classifier

log = logging.getLogger("audiolvm.demo")
CLASSIFIER = "configs/demo/speaker_classifier.yaml"


def parsed(module, *argv: object) -> argparse.Namespace:  # noqa: ANN001 - a pipelines module
    """``module``'s arguments parsed from ``argv`` by its own parser, so every option has its default."""
    parser = argparse.ArgumentParser()
    module.add_parser(parser)
    return parser.parse_args([str(a) for a in argv])


def run_vc(out: Path, classifier_steps: int | None = None) -> dict:
    """Train the classifier, then convert and score (the held-out voice too); returns what the report shows."""
    t0 = time.time()
    log.info("[vc 1/3] training the speaker classifier on real audio (every voice, the VQ-VAE's unseen one too)")
    overrides = [f"train.out_dir={out / 'speaker_classifier'}"]
    overrides += [f"train.max_steps={classifier_steps}"] if classifier_steps else []
    train_classifier.run(parsed(train_classifier, CLASSIFIER, *overrides))
    log.info("[vc 2/3] converting held-out utterances to two other speakers")
    model, classifier = ["--checkpoint", out / "speech_vqvae"], ["--classifier", out / "speaker_classifier"]
    evaluate_vc.run(parsed(evaluate_vc, *model, *classifier, "--n-utterances", 0, "--targets", 2, "--out",
                           out / "vc", "--examples", 3, "--references", 3))
    unseen = None
    if json.loads((out / "speech_vqvae" / "config.json").read_text())["data"]["unseen_speakers"]:
        log.info("[vc 3/3] converting to the voice the VQ-VAE never heard: from one clip, and after enrolment")
        evaluate_vc.run(parsed(evaluate_vc, *model, *classifier, "--unseen", "--unseen-voices", 1,
                               "--enroll-clips", 1, 5, "--enroll-seconds", 30, "--targets", 1, "--n-utterances", 0,
                               "--out", out / "vc", "--examples", 2, "--references", 3))
        unseen = (out / "vc" / "unseen.md").read_text()
    classifier_eval = json.loads((out / "speaker_classifier" / "eval.json").read_text())["held_out_utterances"]
    return {"seconds": time.time() - t0, "classifier": classifier_eval,
            "table": (out / "vc" / "vc.md").read_text(), "unseen": unseen,
            "examples": sorted(p.name for p in (out / "vc" / "examples").glob("*.wav"))}


def run_probe(out: Path) -> dict:
    t0 = time.time()
    log.info("[probe] phone probe of the speech codes against MFCC k-means and a random encoder")
    probe.run(parsed(probe, "--checkpoint", out / "speech_vqvae", "--out", out / "probe", "--max-frames", 20000))
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
        if vc.get("unseen"):
            lines += ["### A voice the VQ-VAE never heard", "",
                      "Held out of the VQ-VAE's training (`data.unseen_speakers: 1`); the classifier knows it. WAVs in "
                      "`vc/unseen_examples/` (its reference clip, conversions to it after enrolment on 5 clips).", ""]
            lines += _demote(vc["unseen"].split("\n", 1)[1].lstrip("\n"))
            lines += [""]
    if probed:
        lines += ["## Phoneme probe of the speech codes", "",
                  f"{probed['seconds']:.0f} s; confusion matrix of the best level in `probe/`.", ""]
        lines += _demote(probed["table"]) + [""]
    return lines
