"""Voice conversion scored by an independent speaker classifier (the VQ-VAE paper's VCTK experiment).

Held-out utterances of the VQ-VAE's split are each converted to --targets other training speakers.
The classifier (trained on real audio by 'audiolvm train-classifier') reports: accuracy on the real
utterances and on plain reconstructions (references), target accuracy of the conversions, and source
leakage (conversions still classified as the source speaker). When the corpus has phone alignments,
content preservation: the conversions are re-encoded and their codes read as phones (each code's most
frequent phone on the training utterances) against the source's alignment. With Resemblyzer installed
(pip install 'audiolvm[speaker]'), also the cosine of conversions to the target's and the source's real voice.
Pitch: each conversion's median F0 against the target's and the source's median F0 over --references real
utterances, in cents (a pitch-aware model maps the source contour into the target's range, see --pitch).
Writes vc.md, vc.json, vc_accuracy.png and a few WAVs (examples/) to --out (default <run>/vc).

Examples:
  audiolvm train-classifier configs/demo/speaker_classifier.yaml
  audiolvm evaluate-vc --checkpoint outputs/demo/speech_vc --classifier outputs/demo/speaker_classifier
  audiolvm evaluate-vc --checkpoint runs/vctk_vc --classifier runs/vctk_classifier \\
      --data /corpora/VCTK-Corpus-0.92 --n-utterances 200 --targets 3 --out eval/vctk_vc
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from audiolvm.builders import (
    build_corpus,
    enroll_voice,
    load_classifier,
    load_model,
    resolve_checkpoint,
    split_entries_for,
)
from audiolvm.config import ExperimentConfig
from audiolvm.core.errors import UsageError
from audiolvm.data import CorpusReader, Entry
from audiolvm.eval.vc import VCResults
from audiolvm.eval.vc_suite import UnseenResults, VCCorpus, VCOptions, evaluate_seen, evaluate_unseen
from audiolvm.models.multilevel import PITCH_MODES

HELP = "voice-conversion accuracy and leakage with an independent speaker classifier"
log = logging.getLogger("audiolvm.evaluate_vc")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="speaker-conditioned VQ-VAE run (model.speaker.levels set)")
    p.add_argument("--classifier", required=True, help="run folder written by 'audiolvm train-classifier'")
    p.add_argument("--data", default=None, help="corpus folder (default: the one the VQ-VAE was trained on)")
    p.add_argument("--n-utterances", type=int, default=24, help="held-out utterances to convert (0 = all)")
    p.add_argument("--targets", type=int, default=2, help="target speakers per utterance (never the source)")
    p.add_argument("--level", type=int, default=0, help="level whose codes are decoded (0 = finest)")
    p.add_argument("--out", default=None, help="output folder (default: <run>/vc)")
    p.add_argument("--seed", type=int, default=0, help="seed for choosing utterances and targets")
    p.add_argument("--examples", type=int, default=3, help="utterances whose WAVs are written to <out>/examples")
    p.add_argument("--references", type=int, default=5,
                   help="real training utterances per speaker for the Resemblyzer centroids and the speakers' median "
                        "F0 (0 = neither)")
    p.add_argument("--pitch", choices=PITCH_MODES, default="map",
                   help="pitch-aware models: the conversions' F0 (see `audiolvm convert --pitch`)")
    unseen = p.add_argument_group("unseen voices (a run trained with data.unseen_speakers > 0)")
    unseen.add_argument("--unseen", action="store_true",
                        help="convert held-out utterances of seen speakers to the voices the run never heard, from "
                             "one reference clip (through the speaker encoder, when the model has one) and after "
                             "enrolment on --enroll-clips clips; and the unseen speakers' other utterances to seen "
                             "voices")
    unseen.add_argument("--unseen-voices", type=int, default=0, help="use only the first N unseen voices (0 = all)")
    unseen.add_argument("--enroll-clips", type=int, nargs="+", default=[1, 5], metavar="N",
                        help="enrol each unseen voice on its first N utterances, once per N (default: 1 5); the "
                             "first utterance is also the reference clip")
    unseen.add_argument("--enroll-seconds", type=float, default=45.0, help="fitting time per enrolled voice")


def corpus_of(cfg: ExperimentConfig, data: str | None) -> VCCorpus:
    """The VQ-VAE's corpus (or ``data``, split with the same settings) by split name."""

    def split(name: str) -> tuple[CorpusReader, list[Entry]]:
        reader, selected = split_entries_for(cfg, name, data)
        return reader, [e for e, _ in selected]

    return VCCorpus(split, cfg.data.sample_rate, f"{data or cfg.data.root} (data.split_by={cfg.data.split_by!r})")


def title(args: argparse.Namespace) -> str:
    """The title of the report ``execute(args)`` writes: vc.md's, or unseen.md's with --unseen."""
    if args.unseen:
        return f"Unseen voices: {args.checkpoint}, classifier {args.classifier}"
    return f"Voice conversion: {args.checkpoint}, level {args.level}, classifier {args.classifier}"


def execute(args: argparse.Namespace) -> VCResults | UnseenResults:
    """``run`` returning the results it wrote (of the unseen voices with --unseen)."""
    model, cfg = load_model(args.checkpoint)
    names = list(cfg.model.speaker.names)
    if not names:
        raise UsageError(f"{args.checkpoint}: the model is not speaker-conditioned (model.speaker.levels="
                         f"{list(cfg.model.speaker.levels)}, model.speaker.names is empty), so it cannot convert "
                         "voices; train one with e.g. model.speaker.levels=[0]")
    classifier, ccfg = load_classifier(args.classifier)
    corpus = corpus_of(cfg, args.data)
    options = VCOptions(level=args.level, n_utterances=args.n_utterances, targets=args.targets, seed=args.seed,
                        examples=args.examples, references=args.references, pitch=args.pitch,
                        unseen_voices=args.unseen_voices, enroll_clips=list(args.enroll_clips))
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "vc"
    if args.unseen:
        result = evaluate_unseen(model, classifier, corpus, names, lambda m, speaker, clips: enroll_voice(
            m, cfg, speaker, clips, steps=10**6, time_limit=args.enroll_seconds, seed=args.seed), options)
        result.write(out, title(args), cfg.data.unseen_speakers, cfg.data.sample_rate)
        print(result.to_markdown(title(args), cfg.data.unseen_speakers))
        return result
    # the classifier's training split, of the corpus converted here: converted utterances in it are noted
    root = args.data or ccfg.data.root
    _, classifier_train, _ = build_corpus(dataclasses.replace(ccfg.data, root=str(root),
                                                              kind="auto" if args.data else ccfg.data.kind))
    results = evaluate_seen(model, classifier, corpus, names, options, classifier_train)
    results.write(out, title(args), cfg.data.sample_rate)
    print(results.to_markdown())
    log.info("%d utterances, %d conversions; wrote %s", len(results.utterances), len(results.conversions), out)
    return results


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
