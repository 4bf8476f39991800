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
import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from audiolvm.builders import (
    build_corpus,
    enroll_voice,
    load_classifier,
    load_model,
    resolve_checkpoint,
    split_entries_for,
)
from audiolvm.core.audio import save_audio
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.core.seed import derived_rng
from audiolvm.data.phones import find_alignment, load_phone_tier
from audiolvm.eval.evaluate import iter_audio, speech_pitch_settings
from audiolvm.eval.pitch import median_f0, speaker_median_f0
from audiolvm.eval.probe import CodePhoneReader
from audiolvm.eval.vc import VCResults, evaluate_vc, pick_targets, resemblyzer_encoder
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


def held_out(cfg, args: argparse.Namespace, names: list[str], classes: list[str]):  # noqa: ANN001, ANN201
    """(reader, entries): up to --n-utterances valid-split utterances of speakers both models know."""
    reader, selected = split_entries_for(cfg, "valid", args.data)
    entries = [e for e, _ in selected if e.speaker in names and e.speaker in classes]
    if len(entries) < len(selected):
        log.warning("%d of %d held-out utterances skipped: their speaker is unknown to the VQ-VAE or the "
                    "classifier", len(selected) - len(entries), len(selected))
    if not entries:
        raise ValueError(f"no held-out utterances of {args.data or cfg.data.root} to convert (data.split_by="
                         f"{cfg.data.split_by!r} must hold out utterances of training speakers)")
    if 0 < args.n_utterances < len(entries):
        keep = sorted(derived_rng(args.seed, 0x7C).permutation(len(entries))[: args.n_utterances])
        entries = [entries[i] for i in keep]
    return reader, entries


def classifier_overlap(ccfg, entries, data: str | None) -> str | None:  # noqa: ANN001
    """A note if some converted utterances were in the classifier's training split."""
    root = data or ccfg.data.root
    _, train, _ = build_corpus(dataclasses.replace(ccfg.data, root=str(root), kind="auto" if data else ccfg.data.kind))
    seen = {(e.speaker, e.utterance) for e in train}
    n = sum((e.speaker, e.utterance) in seen for e in entries)
    if n:
        return (f"{n} of the {len(entries)} converted utterances are in the classifier's training split: its "
                "real / reconstruction accuracies are optimistic (use the same data.split_seed and a larger "
                "data.valid_fraction for the classifier)")
    return None


def reference_waves(cfg, data: str | None, per_speaker: int) -> dict[str, list[np.ndarray]]:  # noqa: ANN001
    """The first ``per_speaker`` real training-split utterances of each speaker (for similarity centroids)."""
    reader, train = split_entries_for(cfg, "train", data)
    per: dict[str, list] = {}
    for e, _ in train:
        if len(per.setdefault(e.speaker, [])) < per_speaker:
            per[e.speaker].append(e)
    chosen = [e for entries in per.values() for e in entries]
    out: dict[str, list[np.ndarray]] = {}
    for e, wave in iter_audio(reader, chosen, cfg.data.sample_rate, "references", progress=False):
        out.setdefault(e.speaker, []).append(wave)
    return out


def content_reader(model, cfg, args: argparse.Namespace, entries):  # noqa: ANN001, ANN201 - Content | None
    """Content preservation, when the corpus has phone alignments: the 2017 code->phone map fitted on the
    VQ-VAE's training utterances, read from re-encoded audio against the source utterance's alignment."""
    reader, train = split_entries_for(cfg, "train", args.data)
    train = [e for e, _ in train]
    if any(find_alignment(e.path) is None for e in [*train, *entries]):
        log.info("content preservation skipped: not every utterance has a phone alignment beside it")
        return None
    tiers = {e.path: load_phone_tier(e.path) for e in [*train, *entries]}
    phones = CodePhoneReader.fit(model, reader, train, tiers, args.level, cfg.data.sample_rate)
    return lambda entry, wave: phones.accuracy(model, wave, tiers[entry.path])


def unseen_voices(cfg, args: argparse.Namespace):  # noqa: ANN001, ANN201 - (reader, {speaker: [entry, ...]})
    """The held-out speakers' utterances by speaker (sorted), the first --unseen-voices of them."""
    reader, entries = split_entries_for(cfg, "unseen", args.data)
    by: dict[str, list] = {}
    for e, _ in sorted(entries, key=lambda item: (item[0].speaker, item[0].utterance)):
        by.setdefault(e.speaker, []).append(e)
    if args.unseen_voices > 0:
        by = dict(list(by.items())[: args.unseen_voices])
    if min(args.enroll_clips) < 1:
        raise ValueError(f"--enroll-clips {args.enroll_clips}: each count must be at least 1")
    short = [s for s, es in by.items() if len(es) <= max(args.enroll_clips)]
    if short:
        raise ValueError(f"unseen speaker {short[0]!r} has {len(by[short[0]])} utterances: --enroll-clips "
                         f"{max(args.enroll_clips)} leaves none to convert; use fewer enrolment clips")
    return reader, by


def enroll_unseen(model, cfg, clips: dict[str, list[np.ndarray]], seconds: float, seed: int):  # noqa: ANN001, ANN201
    """A copy of ``model`` with every unseen voice enrolled from its clips; and the record of each fit."""
    enrolled = copy.deepcopy(model)
    record = {}
    for speaker, waves in clips.items():
        result = enroll_voice(enrolled, cfg, speaker, [torch.from_numpy(w) for w in waves], steps=10**6,
                              time_limit=seconds, seed=seed)
        record[speaker] = {"clips": len(waves), **result.summary(cfg.data.sample_rate)}
        log.info("enrolled %s from %d clips: %d steps in %.0f s, loss %.3f -> %.3f", speaker, len(waves),
                 result.steps, result.seconds, result.first_loss, result.last_loss)
    return enrolled, record


def run_unseen(args: argparse.Namespace, model, cfg, classifier) -> dict:  # noqa: ANN001
    """Conversion to and from the speakers the run held out; writes <out>/unseen.md and unseen.json."""
    names, rate = list(cfg.model.speaker.names), cfg.data.sample_rate
    ureader, voices = unseen_voices(cfg, args)
    missing = [s for s in voices if s not in classifier.speakers]
    if missing:
        raise ValueError(f"the classifier {args.classifier} has no class for the unseen speaker {missing[0]!r}: train "
                         "it on all voices (the judge must know them; only the VQ-VAE holds them out)")
    counts = sorted(set(args.enroll_clips))
    clips = {s: [w for _, w in iter_audio(ureader, es[: counts[-1]], rate, "clips", progress=False)]
             for s, es in voices.items()}
    enrolled, record = {}, {}
    for k in counts:
        enrolled[k], fits = enroll_unseen(model, cfg, {s: ws[:k] for s, ws in clips.items()}, args.enroll_seconds,
                                          args.seed)
        record.update({(s, k): r for s, r in fits.items()})
    best = enrolled[counts[-1]]  # the most clips: the unseen voices' reconstructions and the reverse direction
    settings = speech_pitch_settings(model, rate)
    reference = {s: torch.from_numpy(ws[0])[None, None] for s, ws in clips.items()}
    index = {n: i for i, n in enumerate(best.speaker_names)}

    def median(wave: np.ndarray) -> float:
        return median_f0(wave, settings)

    references = reference_waves(cfg, args.data, args.references) if args.references > 0 else {}
    speaker_f0 = speaker_median_f0({**references, **clips}, settings) if args.references > 0 else None
    reader, seen = held_out(cfg, args, names, classifier.speakers)
    to_unseen = pick_targets([e.speaker for e in seen], list(voices), min(args.targets, len(voices)), args.seed)
    common = {"sample_rate": rate, "progress": False, "median_f0": median, "speaker_f0": speaker_f0}

    def by_id(m):  # noqa: ANN001, ANN202
        return lambda x, target: m.convert(x, torch.tensor([index[target]]), level=args.level, pitch=args.pitch)

    def recon(x: torch.Tensor, source: str) -> torch.Tensor:
        return best.reconstruct(x, level=args.level, speaker=torch.tensor([index[source]]))

    runs: dict[str, VCResults] = {}
    if model.speaker.encoder is not None:
        runs["to unseen voices, from one reference clip (speaker encoder)"] = evaluate_vc(
            classifier, reader, seen, to_unseen, lambda x, t: model.convert(x, reference[t], level=args.level,
                                                                            pitch=args.pitch), recon, **common)
    for k in counts:
        runs[f"to unseen voices, after enrolment on {k} clip{'s' * (k > 1)}"] = evaluate_vc(
            classifier, reader, seen, to_unseen, by_id(enrolled[k]), recon,
            keep_audio=args.examples if k == counts[-1] else 0, **common)
    examples = runs[next(reversed(runs))].examples
    sources = [e for es in voices.values() for e in es[counts[-1]:]]
    if 0 < args.n_utterances < len(sources):
        keep = sorted(derived_rng(args.seed, 0x7D).permutation(len(sources))[: args.n_utterances])
        sources = [sources[i] for i in keep]
    runs[f"from unseen speakers to seen voices (reconstructions: enrolled on {counts[-1]} clips)"] = evaluate_vc(
        classifier, ureader, sources, pick_targets([e.speaker for e in sources], names, args.targets, args.seed),
        by_id(best), recon, **common)
    if model.speaker.encoder is None:
        note = ("reference-clip conversion through the speaker encoder skipped: the model has none "
                "(model.speaker.encoder: false)")
        runs[next(iter(runs))].notes.append(note)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "vc"
    lines = [f"# Unseen voices: {args.checkpoint}, classifier {args.classifier}", "",
             f"Voices the VQ-VAE never heard (data.unseen_speakers={cfg.data.unseen_speakers}): {', '.join(voices)}. "
             "Reference clip: each voice's first utterance; enrolment on N clips: its first N utterances "
             "(a fitted speaker vector and ln-F0 stats; no weight changed); converted: held-out utterances of seen "
             "speakers, and the unseen speakers' remaining utterances.", "",
             "| enrolled voice | clips | seconds of audio | steps | fit, s | loss on the clips, before → after |",
             "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {s} | {k} | {r['seconds_of_audio']} | {r['steps']} | {r['fit_seconds']} | "
              f"{r['loss_first']:.3f} → {r['loss_last']:.3f} |" for (s, k), r in record.items()]
    for title, res in runs.items():
        lines += ["", f"## {title}", "", res.to_markdown()]
    atomic_write_text(out / "unseen.md", "\n".join(lines) + "\n")
    summary = {"voices": list(voices), "enrolment": [{"speaker": s, **r} for (s, _), r in record.items()],
               **{t: r.to_dict() for t, r in runs.items()}}
    atomic_write_json(out / "unseen.json", summary)
    for name, wave in examples.items():
        save_audio(out / "unseen_examples" / f"{name}.wav", wave, rate)
    for name, ws in clips.items():
        save_audio(out / "unseen_examples" / f"{name}_reference.wav", ws[0], rate)
    print("\n".join(lines))
    return summary


def run(args: argparse.Namespace) -> int:
    model, cfg = load_model(args.checkpoint)
    names = list(cfg.model.speaker.names)
    if not names:
        raise ValueError(f"{args.checkpoint}: the model is not speaker-conditioned (model.speaker.levels="
                         f"{list(cfg.model.speaker.levels)}, model.speaker.names is empty), so it cannot convert "
                         "voices; train one with e.g. model.speaker.levels=[0]")
    classifier, ccfg = load_classifier(args.classifier)
    if args.unseen:
        run_unseen(args, model, cfg, classifier)
        return 0
    reader, entries = held_out(cfg, args, names, classifier.speakers)
    targets = pick_targets([e.speaker for e in entries], names, args.targets, args.seed)
    index = {n: i for i, n in enumerate(names)}

    def convert(x: torch.Tensor, target: str) -> torch.Tensor:
        return model.convert(x, torch.tensor([index[target]]), level=args.level, pitch=args.pitch)

    def reconstruct(x: torch.Tensor, source: str) -> torch.Tensor:
        return model.reconstruct(x, level=args.level, speaker=torch.tensor([index[source]]))

    content = content_reader(model, cfg, args, entries)
    encoder = resemblyzer_encoder() if args.references > 0 else None
    references = reference_waves(cfg, args.data, args.references) if args.references > 0 else None
    settings = speech_pitch_settings(model, cfg.data.sample_rate)
    speaker_f0 = speaker_median_f0(references, settings) if references else None
    results = evaluate_vc(classifier, reader, entries, targets, convert, reconstruct, cfg.data.sample_rate,
                          encoder, references if encoder is not None else None, keep_audio=args.examples,
                          content=content, median_f0=lambda wave: median_f0(wave, settings), speaker_f0=speaker_f0)
    if encoder is None:
        results.notes.append("speaker similarity not computed: " + (
            "--references 0" if args.references <= 0 else "Resemblyzer is not installed or not importable"))
    if (note := classifier_overlap(ccfg, entries, args.data)) is not None:
        results.notes.append(note)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "vc"
    title = f"Voice conversion: {args.checkpoint}, level {args.level}, classifier {args.classifier}"
    results.write_markdown(out / "vc.md", title)
    results.write_json(out / "vc.json")
    results.plot(out / "vc_accuracy.png")
    for name, wave in results.examples.items():
        save_audio(out / "examples" / f"{name}.wav", wave, cfg.data.sample_rate)
    print(results.to_markdown())
    log.info("%d utterances, %d conversions; wrote %s", len(results.utterances), len(results.conversions), out)
    return 0
