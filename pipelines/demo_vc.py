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

import logging
import time
from pathlib import Path
from typing import cast

from audiolvm.builders import read_run_config, resolve_checkpoint
from audiolvm.core.errors import UsageError
from audiolvm.eval.vc import VCResults
from audiolvm.eval.vc_suite import UnseenResults
from audiolvm_pipelines import evaluate_vc, probe, train_classifier
from audiolvm_pipelines.demo_common import parsed

log = logging.getLogger("audiolvm.demo")
CLASSIFIER = "configs/demo/speaker_classifier.yaml"


def run_vc(out: Path, classifier_steps: int | None = None) -> dict:
    """Train the classifier, then convert and score (the held-out voice too); returns what the report shows."""
    t0 = time.time()
    log.info("[vc 1/3] training the speaker classifier on real audio (every voice, the VQ-VAE's unseen one too)")
    overrides = [f"train.out_dir={out / 'speaker_classifier'}"]
    overrides += [f"train.max_steps={classifier_steps}"] if classifier_steps else []
    held_out = train_classifier.execute(parsed(train_classifier, CLASSIFIER, *overrides)).held_out
    if held_out is None:
        raise UsageError(f"{CLASSIFIER}: no held-out utterances to score the classifier on; keep data.valid_fraction "
                         "above 0")
    log.info("[vc 2/3] converting held-out utterances to two other speakers")
    model, classifier = ["--checkpoint", out / "speech_vqvae"], ["--classifier", out / "speaker_classifier"]
    seen_args = parsed(evaluate_vc, *model, *classifier, "--n-utterances", 0, "--targets", 2, "--out", out / "vc",
                       "--examples", 3, "--references", 3)
    seen = cast(VCResults, evaluate_vc.execute(seen_args))  # without --unseen
    unseen = None
    # how the speech run was trained (data.unseen_speakers): its config.json, as every loader reads it
    unseen_speakers = read_run_config(resolve_checkpoint(out / "speech_vqvae")[1])["data"]["unseen_speakers"]
    if unseen_speakers:
        log.info("[vc 3/3] converting to the voice the VQ-VAE never heard: from one clip, and after enrolment")
        unseen_args = parsed(evaluate_vc, *model, *classifier, "--unseen", "--unseen-voices", 1,
                             "--enroll-clips", 1, 5, "--enroll-seconds", 30, "--targets", 1, "--n-utterances", 0,
                             "--out", out / "vc", "--examples", 2, "--references", 3)
        voices = cast(UnseenResults, evaluate_vc.execute(unseen_args))
        unseen = voices.to_markdown(evaluate_vc.title(unseen_args), unseen_speakers) + "\n"  # the text of unseen.md
    return {"seconds": time.time() - t0, "classifier": held_out.to_dict(),
            "table": f"# {evaluate_vc.title(seen_args)}\n\n{seen.to_markdown()}",  # the text of vc.md
            "unseen": unseen, "examples": sorted(f"{name}.wav" for name in seen.examples)}


def run_probe(out: Path) -> dict:
    t0 = time.time()
    log.info("[probe] phone probe of the speech codes against MFCC k-means and a random encoder")
    report = probe.execute(parsed(probe, "--checkpoint", out / "speech_vqvae", "--out", out / "probe",
                                  "--max-frames", 20000))
    return {"seconds": time.time() - t0, "table": report.to_markdown()}


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
