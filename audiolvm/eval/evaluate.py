"""Run a trained (multi-level) autoencoder over corpus entries: per-level metrics and code usage."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from audiolvm.core.pitch import PitchSettings, extract_pitch
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.eval.codebook import codebook_usage
from audiolvm.eval.pitch import PitchReport
from audiolvm.eval.plots import plot_spectrograms
from audiolvm.eval.reconstruction import ReconstructionReport, codebook_stats
from audiolvm.models.multilevel import MultiLevelAutoencoder
from audiolvm.models.pitch import pitch_from_arrays

log = logging.getLogger("audiolvm.eval")
PREDICTED = "F0 predicted from the codes"  # the report row of a pitch-aware model's F0 predictor


def level_label(level: int, hop: int) -> str:
    return f"level {level} (hop {hop})"


def own_speaker(model: MultiLevelAutoencoder, speaker: str) -> torch.Tensor | None:
    """The id ``LongTensor[1]`` of ``speaker`` for a speaker-conditioned model (None otherwise), so that
    reconstructions are decoded in the speaker's own voice; an unknown speaker is a KeyError."""
    return model.speaker.ids([speaker]) if model.speaker is not None else None


def speech_pitch_settings(model: MultiLevelAutoencoder, sample_rate: int) -> PitchSettings:
    """The F0 extractor that scores a speech model: the model's own (pitch-aware models), else the default."""
    return model.pitch.settings if model.pitch is not None else PitchSettings(sample_rate=sample_rate)


@torch.no_grad()
def compare_spectrograms(models: Mapping[str, MultiLevelAutoencoder], reader: CorpusReader, entries: Sequence[Entry],
                         sample_rate: int, out: Path, title: str = "") -> list[Path]:
    """One spectrogram PNG per entry in ``out``: the original above each model's reconstruction (in the speaker's
    own voice) at every level, labelled by the model (and the level, for a model with several); e.g. a model
    before and after fine-tuning."""
    pngs = []
    for entry, wave in iter_audio(reader, entries, sample_rate, "spectrograms", False):
        x = torch.from_numpy(wave)[None, None]
        panels = {"original": wave}
        for label, model in models.items():
            recons = model.reconstruct(x, speaker=own_speaker(model, entry.speaker))
            for i, recon in enumerate(recons):
                panels[f"{label} l{i}" if len(recons) > 1 else label] = recon[0, 0].numpy()
        name = entry.utterance.replace("/", "_")
        pngs.append(plot_spectrograms(panels, sample_rate, out / f"{name}.png", title=f"{name}: {title}"))
    return pngs


@torch.no_grad()
def evaluate_model(model: MultiLevelAutoencoder, reader: CorpusReader, entries: Sequence[Entry],
                   sample_rate: int, progress: bool = True, pitch: PitchSettings | None = None) -> ReconstructionReport:
    """Reconstruct every entry at every level; report reconstruction metrics and codebook usage, and with
    ``pitch`` (speech) the F0 errors, voicing error, PESQ and STOI of each level (:class:`PitchReport`); a
    pitch-aware model also gets a row for its F0 predictor (the F0 it reads from the codes, in the speaker's
    own range, against the original's)."""
    model.eval()
    report = ReconstructionReport(sample_rate)
    pitch_report = PitchReport(pitch) if pitch is not None else None
    codes: list[list[torch.Tensor]] = [[] for _ in model.levels]
    for entry, wave in iter_audio(reader, entries, sample_rate, "evaluate", progress):
        x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
        track = extract_pitch(wave, pitch) if pitch is not None else None  # the original's F0, extracted once
        same = track is not None and model.pitch is not None and model.pitch.settings == pitch
        given = pitch_from_arrays([track[0]], [track[1]]) if same and track is not None else None
        out = model(x, own_speaker(model, entry.speaker), given)
        for i, level_out in enumerate(out.levels):
            report.add(level_label(i, model.hops[i]), level_out.recon, x)
            if pitch_report is not None:
                pitch_report.add(level_label(i, model.hops[i]), wave, level_out.recon[0, 0].numpy(), track)
            if level_out.bottleneck.codes is not None:
                codes[i].append(level_out.bottleneck.codes)
        if pitch_report is not None and model.pitch is not None:  # the F0 predictor, in the speaker's own voice
            predicted = model.predict_pitch([o.bottleneck.codes for o in out.levels],
                                            own_speaker(model, entry.speaker), x.shape[-1])
            assert track is not None  # extracted whenever there is a pitch report
            pitch_report.add_tracks(PREDICTED, track,
                                    (predicted.f0[0].numpy(), predicted.voiced[0].numpy() > 0.5))
    for label, row in (pitch_report.summary() if pitch_report is not None else {}).items():
        report.set_stats(label, {k: v if math.isfinite(v) else None for k, v in row.items() if k != "items"})
    if model.discrete:
        for i, lv in enumerate(model.levels):
            usage = codebook_usage(codes[i], lv.bottleneck.num_codes)
            report.set_stats(level_label(i, lv.hop), codebook_stats(usage, sample_rate, lv.hop))
    return report
