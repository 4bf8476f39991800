"""Listening examples of an audio VQ-VAE: held-out originals beside every level's reconstruction (WAV, one
spectrogram PNG each) and, for a pitch-aware speech model, pitch tracks of the original, its reconstruction and its
conversion to the voice farthest in pitch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from audiolvm.core.audio import save_audio
from audiolvm.core.pitch import extract_pitch, f0_range
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.eval.evaluate import own_speaker, speech_pitch_settings
from audiolvm.eval.plots import plot_pitch_tracks, plot_spectrograms
from audiolvm.models import MultiLevelAutoencoder

PitchStats = Mapping[str, list[float]]  # speaker -> ln-F0 [mean, std] (model.pitch.stats)


def farthest_voice(names: Sequence[str], stats: PitchStats, source: str) -> str | None:
    """The speaker of ``names`` (not ``source``) whose mean ln F0 is farthest from ``source``'s, else the first
    other one; None when there is no other."""
    others = [n for n in names if n != source]
    if not others:
        return None
    if source not in stats:
        return others[0]
    return max(others, key=lambda n: abs(stats[n][0] - stats[source][0]))


def write_pitch_plot(model: MultiLevelAutoencoder, entry: Entry, wave: np.ndarray, recon: np.ndarray, png: Path,
                     rate: int, stats: PitchStats) -> str | None:
    """Pitch tracks of the original, its level-0 reconstruction and its conversion to the voice farthest in
    pitch (WAV beside ``png``); returns the conversion's target (None if the model cannot convert)."""
    settings = speech_pitch_settings(model, rate)
    waves = {"original": wave, "reconstruction": recon}
    target = farthest_voice(model.speaker_names if model.speaker_levels else [], stats, entry.speaker)
    if target is not None and model.speaker is not None:
        x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
        waves[f"converted to {target}"] = model.convert(x, model.speaker.ids([target]))[0, 0].numpy()
        save_audio(png.with_name(f"{png.stem}_to_{target}.wav"), waves[f"converted to {target}"], rate)
    voices = {"original": entry.speaker} | ({f"converted to {target}": target} if target is not None else {})
    bands = {label: f0_range(stats[spk]) for label, spk in voices.items() if spk in stats}
    plot_pitch_tracks({k: extract_pitch(v, settings) for k, v in waves.items()}, settings.hop / settings.sample_rate,
                      png, title=f"F0 of {entry.utterance} ({entry.speaker}); shaded: each voice's mean +- 1 sd",
                      bands=bands)
    return target


def write_reconstructions(model: MultiLevelAutoencoder, reader: CorpusReader, entries: list[Entry], out: Path,
                          rate: int) -> Iterator[tuple[Entry, str, dict[str, np.ndarray]]]:
    """Reconstruct each readable entry at every level (in its own voice) and save ``<name>_original.wav`` and
    ``<name>_level<L>.wav`` in ``out``; yields the entry, its file-safe name and the waves by version ("original",
    "level0", ...; ``(T,)`` each). Unreadable files are counted and skipped (:func:`~audiolvm.data.iter_audio`)."""
    for entry, wave in iter_audio(reader, entries, rate, "examples", False):
        name = entry.utterance.replace("/", "_")
        recons = model.reconstruct(torch.from_numpy(wave)[None, None], speaker=own_speaker(model, entry.speaker))
        versions = {"original": wave} | {f"level{i}": r[0, 0].numpy() for i, r in enumerate(recons)}
        for version, audio in versions.items():
            save_audio(out / f"{name}_{version}.wav", audio, rate)
        yield entry, name, versions


def write_examples(model: MultiLevelAutoencoder, reader: CorpusReader, entries: list[Entry], out: Path, rate: int,
                   pitch_stats: PitchStats | None = None) -> list[str]:
    """Original and every level's reconstruction of ``entries``, as WAVs (:func:`write_reconstructions`) and one
    spectrogram PNG per item; with ``pitch_stats`` (speech) also a pitch-track PNG (``<name>_pitch.png``, see
    :func:`write_pitch_plot`). Returns the names."""
    names = []
    for entry, name, versions in write_reconstructions(model, reader, entries, out, rate):
        panels = {"original": versions["original"]} | {
            f"level {i} (hop {h})": versions[f"level{i}"] for i, h in enumerate(model.hops)}
        plot_spectrograms(panels, rate, out / f"{name}.png", title=f"{name}: {entry.text[:60]}")
        if pitch_stats is not None:
            write_pitch_plot(model, entry, versions["original"], versions["level0"], out / f"{name}_pitch.png", rate,
                             pitch_stats)
        names.append(name)
    return names
