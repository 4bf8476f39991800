"""What the run and demo pages share: audio players and examples found in a folder by their file names, figures,
and a run's config, reproducing command and training curves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from audiolvm.config import KIND_KEY, RUN_KINDS
from audiolvm.engine.logs import read_series
from audiolvm.report.charts import training_charts
from audiolvm.report.media import AUDIO_MIME, MediaFiles
from audiolvm.report.page import Example, Media, Player, Section, Table, Text
from audiolvm.report.tables import records_table
from audiolvm.report.voices import corpus_voices

ORIGINAL = "_original"  # an example's source: <name>_original.wav (what the demo and write_examples write)


def version_label(suffix: str) -> str:
    """How a player is labelled from the end of its file name: ``level0`` -> ``level 0``, ``pitch_to_e03`` or
    ``to_e03`` -> ``converted to e03``, ``real`` -> ``real (source)``, else the words of the suffix."""
    if m := re.fullmatch(r"level(\d+)", suffix):
        return f"level {m.group(1)}"
    if m := re.fullmatch(r"(?:pitch_)?to_(.+)", suffix):
        return f"converted to {m.group(1)}"
    return {"real": "real (source)"}.get(suffix, suffix.replace("_", " "))


def _order(suffix: str, source: str) -> tuple[int, int, str]:
    """The source first, then the levels from the finest, then the rest by name."""
    if suffix == source:
        return (0, 0, "")
    if m := re.fullmatch(r"level(\d+)", suffix):
        return (1, int(m.group(1)), "")
    return (2, 0, suffix)


def player(path: Path, media: MediaFiles, label: str = "") -> Player:
    """A player for an audio file, with the spectrogram written beside it (``<stem>.png``) when there is one."""
    png = path.with_suffix(".png")
    return Player(media.audio(path, label), media.image(png, f"{label or path.stem} spectrogram")
                  if png.is_file() else None)


def audio_files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in AUDIO_MIME) if folder.is_dir() else []


def players_in(folder: Path, media: MediaFiles, pattern: str = "*") -> list[Player]:
    """A player for every audio file of ``folder`` matching ``pattern``, by name."""
    return [player(p, media, p.stem.replace("_", " ")) for p in audio_files(folder, pattern)]


def examples_in(folder: Path, media: MediaFiles, source: str = ORIGINAL) -> list[Example]:
    """The examples of a folder: each ``<name><source>.wav`` with every ``<name>_<version>.wav`` (a file goes to
    the longest name it starts with), a spectrogram per file when one is beside it, and the figures ``<name>.png``
    (all versions) and ``<name>_pitch.png`` (pitch tracks)."""
    files = audio_files(folder)
    names = sorted((p.stem[: -len(source)] for p in files if p.stem.endswith(source)), key=len, reverse=True)
    grouped: dict[str, list[tuple[str, Path]]] = {n: [] for n in names}
    for path in files:
        if owner := next((n for n in names if path.stem.startswith(f"{n}_")), None):
            grouped[owner].append((path.stem[len(owner) + 1 :], path))
    examples = []
    for name in sorted(grouped):
        versions = sorted(grouped[name], key=lambda sv: _order(sv[0], source[1:]))
        figures = [media.image(folder / f"{name}{tail}.png", f"{name}{tail}") for tail in ("", "_pitch")
                   if (folder / f"{name}{tail}.png").is_file()]
        examples.append(Example(name, [player(p, media, version_label(s)) for s, p in versions], figures))
    return examples


def vc_examples(folder: Path, media: MediaFiles, model_run: Path | None = None) -> list[Example]:
    """``evaluate-vc``'s examples: per source utterance (``<name>_real.wav``) its reconstruction and conversions
    (``<name>_to_<target>.wav``), each conversion followed by the target's real voice: ``<target>_reference.wav``
    (an unseen voice's reference clip), else the source clip of an example of that speaker (example names start with
    their speaker), else an utterance of the speaker from the corpus of the VQ-VAE run ``model_run``."""
    examples = examples_in(folder, media, source="_real")
    voices = {p.stem.removesuffix("_reference"): p for p in audio_files(folder, "*_reference.*")}
    targets = {m.group(1) for ex in examples for p in ex.players
               if (m := re.fullmatch(r".*_to_(.+)", p.audio.path.stem))}
    for target in sorted(targets - set(voices)):
        if own := next((e for e in examples if e.name.startswith(f"{target}_")), None):
            voices[target] = own.players[0].audio.path
    voices |= corpus_voices(model_run, targets - set(voices)) if model_run is not None else {}
    for ex in examples:
        players = []
        for p in ex.players:
            players.append(p)
            if (m := re.fullmatch(r".*_to_(.+)", p.audio.path.stem)) and m.group(1) in voices:
                players.append(player(voices[m.group(1)], media, f"{m.group(1)}'s real voice"))
        ex.players = players
    return examples


def figures_in(folder: Path, media: MediaFiles, pattern: str = "*.png", label: str = "") -> list[Media]:
    """Every image of ``folder`` matching ``pattern``, by name (labelled by its name after ``label``)."""
    if not folder.is_dir():
        return []
    return [media.image(p, label + p.stem.replace("_", " ")) for p in sorted(folder.glob(pattern))]


def reproduce_command(run: Path, kind: str) -> str:
    """The command that trains the run again from its saved config, into a new folder beside it."""
    command = RUN_KINDS[kind][1] if kind in RUN_KINDS else RUN_KINDS["audio"][1]
    return f"{command} {run / 'config.json'} train.out_dir={run.parent / (run.name + '_again')}"


def run_overview(run: Path, config: dict[str, Any], kind: str, title: str = "Run") -> Section:
    """A run's kind, config (as saved) and the command that reproduces it."""
    weights = run / "model.safetensors"
    name = f" `{config['name']}`" if config.get("name") else ""
    text = (f"Run{name} of kind `{kind}` in `{run}`; "
            + ("its exported weights are `model.safetensors`." if weights.is_file() else "no exported weights yet."))
    shown = {KIND_KEY: kind, **{k: v for k, v in config.items() if k != KIND_KEY}}
    return Section(title, [Text.of(text)], command=reproduce_command(run, kind),
                   config=yaml.safe_dump(shown, sort_keys=False, default_flow_style=None, width=110))


def last_values(csv_path: Path) -> Table:
    """The last logged value of each metric of a ``metrics.csv``, train and valid (for a prior, the held-out NLL),
    with their steps."""
    series = read_series(csv_path)
    rows = []
    for name in sorted(series, key=lambda n: (n != "loss", n)):
        row: dict[str, Any] = {"metric": name}
        for split in ("train", "valid"):
            steps, values = series[name].get(split, ([], []))
            row |= {split: values[-1] if values else None, f"{split} step": steps[-1] if steps else None}
        rows.append(row)
    return records_table(rows, ["metric", "train", "train step", "valid", "valid step"],
                         caption=f"{csv_path}: the last value logged")


def curves_section(run: Path, title: str = "Training curves") -> Section | None:
    """The run's ``metrics.csv`` as one interactive chart per metric and the last values logged (None when the run
    logged nothing yet)."""
    csv_path = run / "metrics.csv"
    charts = training_charts(csv_path) if csv_path.is_file() else []
    if not charts:
        return None
    note = Text.of("One chart per logged metric, train and valid overlaid (a log axis for the positive losses); hover "
                   "a point for its step and value.")
    return Section(title, [note, last_values(csv_path)], charts=charts)
