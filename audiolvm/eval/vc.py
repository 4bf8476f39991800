"""Voice-conversion evaluation with an independent speaker classifier (VQ-VAE paper, VCTK experiment).

Held-out utterances are converted to other training speakers and classified by a classifier trained on
real audio only. Reported: the classifier's accuracy on the real utterances and on plain reconstructions
(references: how well it can do, and what decoding alone costs), the *target accuracy* of conversions
(predicted speaker = target) and the *source leakage* (predicted speaker = source). Optionally, with
Resemblyzer's pretrained GE2E encoder (``pip install 'audiolvm[speaker]'``), the mean cosine of each
conversion to the target speaker's and to the source speaker's centroid of real utterances.

The model enters only through two callables, so this module does not depend on its API:
``convert(x: Tensor[1 x 1 x T], target: str) -> Tensor[1 x 1 x T']`` and
``reconstruct(x: Tensor[1 x 1 x T], source: str) -> Tensor[1 x 1 x T']`` (the source speaker's name
is passed for speaker-conditioned decoders; ignore it otherwise). Content preservation enters the same
way: ``content(entry, wave) -> float`` scores how much of the source utterance's phone content a wave
still carries (the CLI re-encodes it with the same VQ-VAE and reads its codes as phones, see
:class:`audiolvm.eval.probe.CodePhoneReader`); it is applied to the original and to every conversion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from tqdm.auto import tqdm

from audiolvm.core.audio import AudioError, resample, save_audio
from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.core.pitch import hz_to_cents
from audiolvm.core.seed import derived_rng
from audiolvm.data import CorpusReader, Entry
from audiolvm.eval.plots import pyplot, save_figure
from audiolvm.eval.speaker import classify_wave
from audiolvm.models.classifier import SpeakerClassifier

log = logging.getLogger("audiolvm.eval.vc")
Convert = Callable[[torch.Tensor, str], torch.Tensor]
SpeakerEncoder = Callable[[np.ndarray, int], np.ndarray]  # (wave (T,), rate) -> embedding (D,)
Content = Callable[[Entry, np.ndarray], float]  # (source entry, wave (T,)) -> phone accuracy against its alignment
MedianF0 = Callable[[np.ndarray], float]  # wave (T,) -> median F0 in Hz over its voiced frames (NaN if none)
BARS = {"real": "real", "reconstruction": "reconstruction", "converted_target": "converted: target",
        "converted_source": "converted: source (leakage)"}


def pick_targets(sources: Sequence[str], speakers: Sequence[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` distinct target speakers per source, each different from its source, drawn from
    ``derived_rng(seed, i)`` for item ``i`` (so adding items does not change earlier choices)."""
    out = []
    for i, source in enumerate(sources):
        pool = [s for s in speakers if s != source]
        if not 1 <= k <= len(pool):
            raise UsageError(f"pick_targets: {k} targets per utterance, but {source!r} has {len(pool)} other "
                             f"speakers to convert to; use 1..{len(pool)} targets (--targets)")
        out.append([pool[j] for j in sorted(derived_rng(seed, i).choice(len(pool), size=k, replace=False))])
    return out


@dataclass
class UtteranceResult:
    utterance: str
    speaker: str
    real: str  # the classifier's prediction on the real utterance
    reconstruction: str | None  # ... on its plain reconstruction (None: not evaluated)
    content: float | None = None  # phone accuracy of the original's re-encoded codes (None: not evaluated)


@dataclass
class ConversionResult:
    utterance: str
    source: str
    target: str
    predicted: str
    sim_target: float | None = None  # cosine to the target's centroid of real utterances
    sim_source: float | None = None
    content: float | None = None  # phone accuracy of the conversion's re-encoded codes vs the source alignment
    f0_cents_to_target: float | None = None  # the conversion's median F0 above the target speaker's (cents)
    f0_cents_to_source: float | None = None  # ... above the source speaker's


def _mean(flags: Sequence[bool]) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


@dataclass
class VCResults:
    """Per-utterance and per-conversion predictions; summaries, markdown, JSON and a bar plot."""

    utterances: list[UtteranceResult] = field(default_factory=list)
    conversions: list[ConversionResult] = field(default_factory=list)
    num_speakers: int = 0  # the classifier's classes (chance level = 1 / num_speakers)
    notes: list[str] = field(default_factory=list)
    examples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # name -> wave, not in JSON

    def accuracies(self) -> dict[str, float | None]:
        u, c = self.utterances, self.conversions
        return {"real": _mean([r.real == r.speaker for r in u]),
                "reconstruction": _mean([r.reconstruction == r.speaker for r in u if r.reconstruction is not None]),
                "converted_target": _mean([r.predicted == r.target for r in c]),
                "converted_source": _mean([r.predicted == r.source for r in c])}

    def similarity(self) -> dict[str, float] | None:
        sims = [(r.sim_target, r.sim_source) for r in self.conversions if r.sim_target is not None]
        if not sims:
            return None
        t, s = np.array(sims, dtype=np.float64).T
        return {"to_target": float(t.mean()), "to_source": float(s.mean()), "closer_to_target": float((t > s).mean())}

    def content(self) -> dict[str, float] | None:
        """Mean phone accuracy of the re-encoded originals and conversions (None: not evaluated)."""
        orig = [r.content for r in self.utterances if r.content is not None]
        conv = [r.content for r in self.conversions if r.content is not None]
        if not orig or not conv:
            return None
        return {"original": float(np.mean(orig)), "converted": float(np.mean(conv))}

    def pitch(self) -> dict[str, float] | None:
        """Median absolute distance (cents) of the conversions' median F0 to the target's and the source's
        median F0, and the fraction within 100 cents of the target (None: not evaluated)."""
        pairs = [(r.f0_cents_to_target, r.f0_cents_to_source) for r in self.conversions
                 if r.f0_cents_to_target is not None and r.f0_cents_to_source is not None]
        pairs = [(t, s) for t, s in pairs if np.isfinite(t) and np.isfinite(s)]
        if not pairs:
            return None
        t, s = np.abs(np.array(pairs, dtype=np.float64)).T
        return {"to_target_cents": float(np.median(t)), "to_source_cents": float(np.median(s)),
                "within_100_cents": float((t <= 100).mean()), "n": float(len(t))}

    def per_target(self) -> dict[str, float]:
        by: dict[str, list[bool]] = {}
        for r in self.conversions:
            by.setdefault(r.target, []).append(r.predicted == r.target)
        return {k: float(np.mean(v)) for k, v in sorted(by.items())}

    def summary(self) -> dict:
        return {"n_utterances": len(self.utterances), "n_conversions": len(self.conversions),
                "num_speakers": self.num_speakers, "accuracy": self.accuracies(), "similarity": self.similarity(),
                "content": self.content(), "pitch": self.pitch(),
                "target_accuracy_per_target": self.per_target(), "notes": list(self.notes)}

    def to_dict(self) -> dict:
        return {**self.summary(), "utterances": [asdict(r) for r in self.utterances],
                "conversions": [asdict(r) for r in self.conversions]}

    def to_markdown(self) -> str:
        acc, n_u, n_c = self.accuracies(), len(self.utterances), len(self.conversions)
        counts = {"real": n_u, "reconstruction": sum(r.reconstruction is not None for r in self.utterances),
                  "converted_target": n_c, "converted_source": n_c}
        lines = ["| audio | classifier predicts | accuracy | items |", "|---|---|---|---|"]
        says = {"real": "true speaker", "reconstruction": "true speaker", "converted_target": "target speaker",
                "converted_source": "source speaker"}
        for key, label in BARS.items():
            value = "n/a" if acc[key] is None else f"{acc[key]:.3f}"
            lines.append(f"| {label} | {says[key]} | {value} | {counts[key]} |")
        if self.num_speakers:
            lines.append(f"\nChance level: {1 / self.num_speakers:.3f} ({self.num_speakers} speakers).")
        sim = self.similarity()
        if sim is not None:
            lines += ["", "| speaker similarity (Resemblyzer cosine) | value |", "|---|---|",
                      f"| converted to target centroid | {sim['to_target']:.3f} |",
                      f"| converted to source centroid | {sim['to_source']:.3f} |",
                      f"| fraction closer to target | {sim['closer_to_target']:.3f} |"]
        content = self.content()
        if content is not None:
            lines += ["", "| content (phones read from re-encoded codes) | accuracy |", "|---|---|",
                      f"| original utterances | {content['original']:.3f} |",
                      f"| conversions | {content['converted']:.3f} |"]
        pitch = self.pitch()
        if pitch is not None:
            lines += ["", "| pitch: the conversion's median F0 vs the speaker's (real utterances) | value |",
                      "|---|---|",
                      f"| median distance to the target's, cents | {pitch['to_target_cents']:.0f} |",
                      f"| median distance to the source's, cents | {pitch['to_source_cents']:.0f} |",
                      f"| fraction within 100 cents of the target's | {pitch['within_100_cents']:.3f} |"]
        lines += [f"\nNote: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def write_json(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    def write_markdown(self, path: str | Path, title: str = "Voice conversion") -> Path:
        return atomic_write_text(path, f"# {title}\n\n{self.to_markdown()}")

    def write(self, folder: str | Path, title: str, sample_rate: int) -> None:
        """``vc.md`` (under ``# title``), ``vc.json``, ``vc_accuracy.png`` and ``examples/<name>.wav`` in ``folder``."""
        folder = Path(folder)
        self.write_markdown(folder / "vc.md", title)
        self.write_json(folder / "vc.json")
        self.plot(folder / "vc_accuracy.png")
        for name, wave in self.examples.items():
            save_audio(folder / "examples" / f"{name}.wav", wave, sample_rate)

    def plot(self, png: str | Path, title: str = "") -> Path:
        """Bar plot of the four accuracies, with the chance level as a dashed line."""
        plt = pyplot()

        acc = self.accuracies()
        keys = [k for k in BARS if acc[k] is not None]
        values = [cast(float, acc[k]) for k in keys]  # keys: the measured ones
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        bars = ax.bar([BARS[k].replace(": ", ":\n") for k in keys], values,
                      color=["#4c72b0", "#55a868", "#dd8452", "#c44e52"][: len(keys)])
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        if self.num_speakers:
            ax.axhline(1 / self.num_speakers, color="gray", linestyle="--", linewidth=1, label="chance")
            ax.legend(fontsize=8, loc="upper right")
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("speaker-classifier accuracy")
        ax.tick_params(labelsize=8)
        ax.set_title(title or f"{len(self.utterances)} held-out utterances, {len(self.conversions)} conversions",
                     fontsize=9)
        return save_figure(fig, png)


def resemblyzer_encoder(device: str = "cpu") -> SpeakerEncoder | None:
    """Resemblyzer's pretrained speaker encoder (weights ship in its wheel) as ``(wave, rate) -> unit
    vector[256]``, or None (logged) when it is not installed or cannot be imported."""
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as exc:
        log.info("speaker similarity skipped: Resemblyzer is not usable here (%s); install it with "
                 "pip install 'audiolvm[speaker]'. If the error names pkg_resources (webrtcvad 2.0.10 with "
                 "setuptools >= 81): pip uninstall webrtcvad && pip install webrtcvad-wheels", exc)
        return None
    encoder = VoiceEncoder(device, verbose=False)

    def embed(wave: np.ndarray, sample_rate: int) -> np.ndarray:
        x = np.asarray(wave, dtype=np.float32).reshape(-1)
        trimmed = preprocess_wav(x, source_sr=sample_rate)  # 16 kHz, volume-normalised, long silences cut
        if len(trimmed) < 1600:  # voice activity detection kept under 0.1 s: use the whole clip instead
            trimmed = resample(x, sample_rate, 16000)
        return encoder.embed_utterance(trimmed)

    return embed


def speaker_centroids(encoder: SpeakerEncoder, references: Mapping[str, Sequence[np.ndarray]],
                      sample_rate: int) -> dict[str, np.ndarray]:
    """Unit-norm mean embedding of each speaker's reference utterances."""
    out = {}
    for speaker, waves in references.items():
        if len(waves):
            mean = np.mean([encoder(w, sample_rate) for w in waves], axis=0)
            out[speaker] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def _to_wave(y: torch.Tensor) -> np.ndarray:
    return y.detach().float().cpu().reshape(-1).numpy()  # (1, 1, T) -> (T,)


def _check_speakers(classifier: SpeakerClassifier, entries: Sequence[Entry], targets: Sequence[Sequence[str]]) -> None:
    if len(targets) != len(entries):
        raise UsageError(f"evaluate_vc: {len(targets)} target lists for {len(entries)} utterances")
    needed = {e.speaker for e in entries} | {t for ts in targets for t in ts}
    unknown = sorted(needed - set(classifier.speakers))
    if unknown:
        raise UsageError(f"evaluate_vc: speakers {unknown[:5]} are not among the classifier's "
                         f"{len(classifier.speakers)} classes ({classifier.speakers[:5]}...); train the classifier "
                         "on the same corpus as the VQ-VAE")


@torch.no_grad()
def evaluate_vc(classifier: SpeakerClassifier, reader: CorpusReader, entries: Sequence[Entry],
                targets: Sequence[Sequence[str]], convert: Convert, reconstruct: Convert | None,
                sample_rate: int, speaker_encoder: SpeakerEncoder | None = None,
                references: Mapping[str, Sequence[np.ndarray]] | None = None, keep_audio: int = 0,
                progress: bool = True, content: Content | None = None, median_f0: MedianF0 | None = None,
                speaker_f0: Mapping[str, float] | None = None) -> VCResults:
    """Convert each utterance of ``entries`` to each of its ``targets`` and classify everything.

    Args:
        classifier: trained on real audio; its classes must include every source and target speaker.
        reader, entries: held-out utterances (loaded whole at ``sample_rate``, the model's rate).
        targets: per entry, the speakers to convert it to.
        convert, reconstruct: the model (see the module docstring); ``reconstruct=None`` skips that reference.
        speaker_encoder, references: optional speaker similarity: real utterances per speaker
            (at ``sample_rate``) whose embedding centroid each conversion is compared with.
        keep_audio: keep the waves of the first ``keep_audio`` utterances (real, reconstruction and
            conversions) in ``results.examples``.
        content: optional content-preservation score of the original and of each conversion.
        median_f0, speaker_f0: optional pitch check: each conversion's median F0 against the target's and the
            source's median F0 over real utterances (``speaker_f0``, Hz), in cents.
    """
    _check_speakers(classifier, entries, targets)
    results = VCResults(num_speakers=len(classifier.speakers))
    centroids = speaker_centroids(speaker_encoder, references, sample_rate) if speaker_encoder and references else {}
    if speaker_encoder is not None and not centroids:
        results.notes.append("speaker similarity skipped: no reference utterances were given")
    for entry, wanted in tqdm(list(zip(entries, targets, strict=True)), desc="evaluate-vc", disable=not progress):
        try:
            wave = reader.load(entry, sample_rate)  # (T,)
        except AudioError as exc:
            reader.skip(entry.path, exc.reason)
            continue
        x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
        keep = len(results.utterances) < keep_audio
        name = entry.utterance if entry.utterance.startswith(entry.speaker) else f"{entry.speaker}_{entry.utterance}"
        recon = _to_wave(reconstruct(x, entry.speaker)) if reconstruct is not None else None
        results.utterances.append(UtteranceResult(
            entry.utterance, entry.speaker, classify_wave(classifier, wave, sample_rate),
            classify_wave(classifier, recon, sample_rate) if recon is not None else None,
            content(entry, wave) if content is not None else None))
        if keep:
            results.examples[f"{name}_real"] = wave
            if recon is not None:
                results.examples[f"{name}_reconstruction"] = recon
        for target in wanted:
            y = _to_wave(convert(x, target))
            item = ConversionResult(entry.utterance, entry.speaker, target, classify_wave(classifier, y, sample_rate),
                                    content=content(entry, y) if content is not None else None)
            if median_f0 is not None and speaker_f0 and target in speaker_f0 and entry.speaker in speaker_f0:
                f0 = median_f0(y)
                item.f0_cents_to_target = float(hz_to_cents(f0, speaker_f0[target]))
                item.f0_cents_to_source = float(hz_to_cents(f0, speaker_f0[entry.speaker]))
            if target in centroids and entry.speaker in centroids:
                e = speaker_encoder(y, sample_rate)  # type: ignore[misc]
                item.sim_target, item.sim_source = float(e @ centroids[target]), float(e @ centroids[entry.speaker])
            results.conversions.append(item)
            if keep:
                results.examples[f"{name}_to_{target}"] = y
    return results
