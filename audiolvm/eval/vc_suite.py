"""The voice-conversion evaluation of a speaker-conditioned VQ-VAE (``audiolvm evaluate-vc``), end to end.

:func:`evaluate_seen` converts held-out utterances of training speakers to other training voices;
:func:`evaluate_unseen` converts to and from the voices a run held out (``data.unseen_speakers``): from one
reference clip through the speaker encoder, and after enrolment on a few clips. Both score with
:func:`~audiolvm.eval.vc.evaluate_vc` (an independent speaker classifier; content preservation when the corpus has
phone alignments; median F0 against the speakers' own). The corpus enters as a :class:`VCCorpus` (its splits by
name) and enrolment as an :data:`Enroll` callable, so this module loads nothing by run path.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiolvm.core.audio import save_audio
from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.core.pitch import median_f0
from audiolvm.core.seed import derived_rng
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.data.phones import find_alignment, load_phone_tier
from audiolvm.eval.evaluate import speech_pitch_settings
from audiolvm.eval.pitch import speaker_median_f0
from audiolvm.eval.probe import CodePhoneReader
from audiolvm.eval.vc import Content, Convert, VCResults, evaluate_vc, pick_targets, resemblyzer_encoder
from audiolvm.models.classifier import SpeakerClassifier
from audiolvm.models.enroll import Enrolment
from audiolvm.models.multilevel import MultiLevelAutoencoder

log = logging.getLogger("audiolvm.eval.vc_suite")
Enroll = Callable[[MultiLevelAutoencoder, str, list[torch.Tensor]], Enrolment]  # fits a voice into the model, in place


@dataclass
class VCCorpus:
    """The VQ-VAE's corpus: ``split(name)`` -> ``(reader, entries)`` for "train", "valid" and "unseen", read at
    ``sample_rate``; ``name`` describes it in errors (e.g. its root and ``data.split_by``)."""

    split: Callable[[str], tuple[CorpusReader, list[Entry]]]
    sample_rate: int
    name: str = "the corpus"


@dataclass
class VCOptions:
    """What to convert and how (the ``evaluate-vc`` options)."""

    level: int = 0  # level whose codes are decoded
    n_utterances: int = 24  # held-out utterances to convert (0 = all)
    targets: int = 2  # target speakers per utterance
    seed: int = 0  # chooses utterances and targets
    examples: int = 3  # utterances whose waves are kept (``VCResults.examples``)
    references: int = 5  # real training utterances per speaker for the speakers' median F0 and similarity (0: none)
    pitch: str = "map"  # pitch-aware models: the conversions' F0 (``MultiLevelAutoencoder.convert``)
    unseen_voices: int = 0  # unseen: only the first N held-out voices (0 = all)
    enroll_clips: Sequence[int] = (1, 5)  # unseen: enrol each voice on its first N utterances, once per N


def held_out(corpus: VCCorpus, names: Sequence[str], classes: Sequence[str], options: VCOptions
             ) -> tuple[CorpusReader, list[Entry]]:
    """Up to ``options.n_utterances`` valid-split utterances (chosen by seed) of speakers both models know."""
    reader, selected = corpus.split("valid")
    entries = [e for e in selected if e.speaker in names and e.speaker in classes]
    if len(entries) < len(selected):
        log.warning("%d of %d held-out utterances skipped: their speaker is unknown to the VQ-VAE or the "
                    "classifier", len(selected) - len(entries), len(selected))
    if not entries:
        raise UsageError(f"no held-out utterances of {corpus.name} to convert: its valid split must hold out "
                         "utterances of training speakers")
    if 0 < options.n_utterances < len(entries):
        keep = sorted(derived_rng(options.seed, 0x7C).permutation(len(entries))[: options.n_utterances])
        entries = [entries[i] for i in keep]
    return reader, entries


def reference_waves(corpus: VCCorpus, per_speaker: int) -> dict[str, list[np.ndarray]]:
    """The first ``per_speaker`` real training-split utterances of each speaker (for centroids and median F0)."""
    reader, train = corpus.split("train")
    per: dict[str, list[Entry]] = {}
    for e in train:
        if len(per.setdefault(e.speaker, [])) < per_speaker:
            per[e.speaker].append(e)
    chosen = [e for entries in per.values() for e in entries]
    out: dict[str, list[np.ndarray]] = {}
    for e, wave in iter_audio(reader, chosen, corpus.sample_rate, "references", progress=False):
        out.setdefault(e.speaker, []).append(wave)
    return out


def content_scorer(model: MultiLevelAutoencoder, corpus: VCCorpus, entries: Sequence[Entry],
                   level: int) -> Content | None:
    """Content preservation, when every utterance has a phone alignment (else None): the 2017 code->phone map
    fitted on the training utterances, read from re-encoded audio against the source utterance's alignment."""
    reader, train = corpus.split("train")
    if any(find_alignment(e.path) is None for e in [*train, *entries]):
        log.info("content preservation skipped: not every utterance has a phone alignment beside it")
        return None
    tiers = {e.path: load_phone_tier(e.path) for e in [*train, *entries]}
    phones = CodePhoneReader.fit(model, reader, train, tiers, level, corpus.sample_rate)
    return lambda entry, wave: phones.accuracy(model, wave, tiers[entry.path])


def _by_id(model: MultiLevelAutoencoder, index: dict[str, int], options: VCOptions) -> Convert:
    return lambda x, target: model.convert(x, torch.tensor([index[target]]), level=options.level, pitch=options.pitch)


def _reconstruct(model: MultiLevelAutoencoder, index: dict[str, int], options: VCOptions) -> Convert:
    return lambda x, source: model.reconstruct(x, level=options.level, speaker=torch.tensor([index[source]]))


def evaluate_seen(model: MultiLevelAutoencoder, classifier: SpeakerClassifier, corpus: VCCorpus,
                  names: Sequence[str], options: VCOptions,
                  classifier_train: Sequence[Entry] | None = None) -> VCResults:
    """Held-out utterances of the training speakers ``names`` (the model's, in id order) converted to
    ``options.targets`` other training speakers each; Resemblyzer similarity when it is installed. With the
    classifier's training entries ``classifier_train``, a note says how many converted utterances it trained on."""
    reader, entries = held_out(corpus, names, classifier.speakers, options)
    targets = pick_targets([e.speaker for e in entries], names, options.targets, options.seed)
    index = {n: i for i, n in enumerate(names)}
    content = content_scorer(model, corpus, entries, options.level)
    encoder = resemblyzer_encoder() if options.references > 0 else None
    references = reference_waves(corpus, options.references) if options.references > 0 else None
    settings = speech_pitch_settings(model, corpus.sample_rate)
    speaker_f0 = speaker_median_f0(references, settings) if references else None
    results = evaluate_vc(classifier, reader, entries, targets, _by_id(model, index, options),
                          _reconstruct(model, index, options), corpus.sample_rate, encoder,
                          references if encoder is not None else None, keep_audio=options.examples, content=content,
                          median_f0=lambda wave: median_f0(wave, settings), speaker_f0=speaker_f0)
    if encoder is None:
        results.notes.append("speaker similarity not computed: " + (
            "--references 0" if options.references <= 0 else "Resemblyzer is not installed or not importable"))
    if classifier_train is not None and (note := overlap_note(classifier_train, entries)) is not None:
        results.notes.append(note)
    return results


def overlap_note(classifier_train: Sequence[Entry], entries: Sequence[Entry]) -> str | None:
    """A note if some converted ``entries`` were in the classifier's training split."""
    seen = {(e.speaker, e.utterance) for e in classifier_train}
    n = sum((e.speaker, e.utterance) in seen for e in entries)
    if n:
        return (f"{n} of the {len(entries)} converted utterances are in the classifier's training split: its "
                "real / reconstruction accuracies are optimistic (use the same data.split_seed and a larger "
                "data.valid_fraction for the classifier)")
    return None


# ---- voices the model never heard
@dataclass
class UnseenResults:
    """``voices`` held out of training; ``enrolment[(voice, clips)]``: each fit's record; ``runs``: title ->
    results (the last enrolment's keeps its example waves); ``clips``: each voice's enrolment clips, the first
    being its reference clip."""

    voices: list[str]
    enrolment: dict[tuple[str, int], dict[str, Any]]
    runs: dict[str, VCResults]
    clips: dict[str, list[np.ndarray]] = field(repr=False)
    examples: dict[str, np.ndarray] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"voices": list(self.voices), "enrolment": [{"speaker": s, **r} for (s, _), r in self.enrolment.items()],
                **{t: r.to_dict() for t, r in self.runs.items()}}

    def write(self, folder: str | Path, title: str, unseen_speakers: int, sample_rate: int) -> None:
        """``unseen.md`` (:meth:`to_markdown`), ``unseen.json`` and ``unseen_examples/``: the last enrolment's
        example waves and each voice's reference clip (``<voice>_reference.wav``)."""
        folder = Path(folder)
        atomic_write_text(folder / "unseen.md", self.to_markdown(title, unseen_speakers) + "\n")
        atomic_write_json(folder / "unseen.json", self.to_dict())
        for name, wave in self.examples.items():
            save_audio(folder / "unseen_examples" / f"{name}.wav", wave, sample_rate)
        for name, ws in self.clips.items():
            save_audio(folder / "unseen_examples" / f"{name}_reference.wav", ws[0], sample_rate)

    def to_markdown(self, title: str, unseen_speakers: int) -> str:
        """The report under ``# title``; ``unseen_speakers``: the run's ``data.unseen_speakers``."""
        lines = [f"# {title}", "",
                 f"Voices the VQ-VAE never heard (data.unseen_speakers={unseen_speakers}): {', '.join(self.voices)}. "
                 "Reference clip: each voice's first utterance; enrolment on N clips: its first N utterances "
                 "(a fitted speaker vector and ln-F0 stats; no weight changed); converted: held-out utterances of "
                 "seen speakers, and the unseen speakers' remaining utterances.", "",
                 "| enrolled voice | clips | seconds of audio | steps | fit, s | loss on the clips, before → after |",
                 "|---|---:|---:|---:|---:|---|"]
        lines += [f"| {s} | {k} | {r['seconds_of_audio']} | {r['steps']} | {r['fit_seconds']} | "
                  f"{r['loss_first']:.3f} → {r['loss_last']:.3f} |" for (s, k), r in self.enrolment.items()]
        for name, res in self.runs.items():
            lines += ["", f"## {name}", "", res.to_markdown()]
        return "\n".join(lines)


def unseen_voices(corpus: VCCorpus, options: VCOptions) -> tuple[CorpusReader, dict[str, list[Entry]]]:
    """The held-out speakers' utterances by speaker (sorted), the first ``options.unseen_voices`` of them."""
    reader, entries = corpus.split("unseen")
    by: dict[str, list[Entry]] = {}
    for e in sorted(entries, key=lambda e: (e.speaker, e.utterance)):
        by.setdefault(e.speaker, []).append(e)
    if options.unseen_voices > 0:
        by = dict(list(by.items())[: options.unseen_voices])
    if min(options.enroll_clips) < 1:
        raise UsageError(f"--enroll-clips {list(options.enroll_clips)}: each count must be at least 1")
    short = [s for s, es in by.items() if len(es) <= max(options.enroll_clips)]
    if short:
        raise UsageError(f"unseen speaker {short[0]!r} has {len(by[short[0]])} utterances: --enroll-clips "
                         f"{max(options.enroll_clips)} leaves none to convert; use fewer enrolment clips")
    return reader, by


def enroll_unseen(model: MultiLevelAutoencoder, enroll: Enroll, clips: dict[str, list[np.ndarray]],
                  sample_rate: int) -> tuple[MultiLevelAutoencoder, dict[str, dict[str, Any]]]:
    """A copy of ``model`` with every voice of ``clips`` enrolled; and the record of each fit."""
    enrolled = copy.deepcopy(model)
    record = {}
    for speaker, waves in clips.items():
        result = enroll(enrolled, speaker, [torch.from_numpy(w) for w in waves])
        record[speaker] = {"clips": len(waves), **result.summary(sample_rate)}
        log.info("enrolled %s from %d clips: %d steps in %.0f s, loss %.3f -> %.3f", speaker, len(waves),
                 result.steps, result.seconds, result.first_loss, result.last_loss)
    return enrolled, record


def evaluate_unseen(model: MultiLevelAutoencoder, classifier: SpeakerClassifier, corpus: VCCorpus,
                    names: Sequence[str], enroll: Enroll, options: VCOptions) -> UnseenResults:
    """Conversion of held-out utterances of the training speakers ``names`` to the unseen voices (from a reference
    clip through the speaker encoder, when the model has one, and after enrolment on each count of
    ``options.enroll_clips``), and of the unseen speakers' other utterances to training voices."""
    rate = corpus.sample_rate
    ureader, voices = unseen_voices(corpus, options)
    missing = [s for s in voices if s not in classifier.speakers]
    if missing:
        raise UsageError(f"the classifier has no class for the unseen speaker {missing[0]!r}: train it on all voices "
                         "(the judge must know them; only the VQ-VAE holds them out)")
    counts = sorted(set(options.enroll_clips))
    clips = {s: [w for _, w in iter_audio(ureader, es[: counts[-1]], rate, "clips", progress=False)]
             for s, es in voices.items()}
    enrolled, record = {}, {}
    for k in counts:
        enrolled[k], fits = enroll_unseen(model, enroll, {s: ws[:k] for s, ws in clips.items()}, rate)
        record.update({(s, k): r for s, r in fits.items()})
    best = enrolled[counts[-1]]  # the most clips: the unseen voices' reconstructions and the reverse direction
    settings = speech_pitch_settings(model, rate)
    reference = {s: torch.from_numpy(ws[0])[None, None] for s, ws in clips.items()}
    index = {n: i for i, n in enumerate(best.speaker_names)}
    references = reference_waves(corpus, options.references) if options.references > 0 else {}
    speaker_f0 = speaker_median_f0({**references, **clips}, settings) if options.references > 0 else None
    reader, seen = held_out(corpus, names, classifier.speakers, options)
    to_unseen = pick_targets([e.speaker for e in seen], list(voices), min(options.targets, len(voices)), options.seed)
    common: dict[str, Any] = {"sample_rate": rate, "progress": False,
                              "median_f0": lambda wave: median_f0(wave, settings), "speaker_f0": speaker_f0}
    recon = _reconstruct(best, index, options)
    runs: dict[str, VCResults] = {}
    if model.speaker is None:  # enrolment above already needs one
        raise UsageError("evaluate_unseen needs a speaker-conditioned model (model.speaker)")
    if model.speaker.encoder is not None:
        runs["to unseen voices, from one reference clip (speaker encoder)"] = evaluate_vc(
            classifier, reader, seen, to_unseen, lambda x, t: model.convert(x, reference[t], level=options.level,
                                                                            pitch=options.pitch), recon, **common)
    for k in counts:
        runs[f"to unseen voices, after enrolment on {k} clip{'s' * (k > 1)}"] = evaluate_vc(
            classifier, reader, seen, to_unseen, _by_id(enrolled[k], index, options), recon,
            keep_audio=options.examples if k == counts[-1] else 0, **common)
    examples = runs[next(reversed(runs))].examples
    sources = [e for es in voices.values() for e in es[counts[-1]:]]
    if 0 < options.n_utterances < len(sources):
        keep = sorted(derived_rng(options.seed, 0x7D).permutation(len(sources))[: options.n_utterances])
        sources = [sources[i] for i in keep]
    runs[f"from unseen speakers to seen voices (reconstructions: enrolled on {counts[-1]} clips)"] = evaluate_vc(
        classifier, ureader, sources, pick_targets([e.speaker for e in sources], names, options.targets, options.seed),
        _by_id(best, index, options), recon, **common)
    if model.speaker.encoder is None:
        runs[next(iter(runs))].notes.append("reference-clip conversion through the speaker encoder skipped: the "
                                            "model has none (model.speaker.encoder: false)")
    return UnseenResults(list(voices), record, runs, clips, examples)
