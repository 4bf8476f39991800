"""Listening examples of an audio run for its page: held-out items of its corpus, reconstructed at every level."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from audiolvm.builders.audio import load_model
from audiolvm.builders.audio_data import split_entries_for
from audiolvm.builders.runs import read_run_config, recorded_kind
from audiolvm.core.errors import UsageError
from audiolvm.core.pitch import extract_pitch
from audiolvm.eval.evaluate import speech_pitch_settings
from audiolvm.eval.examples import write_reconstructions
from audiolvm.eval.plots import plot_pitch_tracks, plot_spectrogram_each
from audiolvm.report.collect import ORIGINAL
from audiolvm.report.demo_page import REPORT_JSON
from audiolvm.report.run_page import EXAMPLES

log = logging.getLogger("audiolvm.report")


def has_examples(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob(f"*{ORIGINAL}.wav"))


@torch.no_grad()
def write_examples(run: Path, folder: Path, count: int, data: str | None = None) -> list[str]:
    """Reconstruct the first ``count`` held-out items (split ``valid``; every item when that is empty) of the audio
    run ``run``'s corpus (or of ``data``, split alike) at every level into ``folder``: per item
    ``<name>_original.wav`` and ``<name>_level<L>.wav``, a log-mel spectrogram beside each (``<stem>.png``), and for
    a pitch-aware model the F0 tracks of all of them (``<name>_pitch.png``). Returns the items' names."""
    if count < 1:
        raise UsageError(f"--examples {count}: give at least 1 (0 leaves the examples out)")
    model, cfg = load_model(run)
    reader, selected = split_entries_for(cfg, "valid", data)
    if not selected:
        reader, selected = split_entries_for(cfg, "all", data)
    rate, names = cfg.data.sample_rate, []
    pitch = speech_pitch_settings(model, rate) if model.pitch is not None else None
    for _, name, versions in write_reconstructions(model, reader, [e for e, _ in selected][:count], folder, rate):
        plot_spectrogram_each(versions, rate, {v: folder / f"{name}_{v}.png" for v in versions})
        if pitch is not None:
            plot_pitch_tracks({k: extract_pitch(v, pitch) for k, v in versions.items()}, pitch.hop / pitch.sample_rate,
                              folder / f"{name}_pitch.png", title=f"F0 of {name}")
        names.append(name)
    log.info("wrote %d examples to %s", len(names), folder)
    return names


def ensure_examples(path: Path, count: int, data: str | None = None) -> list[str]:
    """For an audio run folder whose ``examples/`` holds none yet, write ``count`` (:func:`write_examples`);
    returns the names written (none for another folder, a run of another kind, or ``count`` 0)."""
    folder, config_path = path / EXAMPLES, path / "config.json"
    if count == 0 or has_examples(folder) or not config_path.is_file() or (path / REPORT_JSON).is_file():
        return []
    if recorded_kind(read_run_config(config_path), str(config_path)) != "audio":
        return []
    return write_examples(path, folder, count, data)
