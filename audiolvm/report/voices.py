"""The real voice of a speaker, for a conversion to it: one utterance of the speaker from an audio run's corpus."""

from __future__ import annotations

import logging
from pathlib import Path

from audiolvm.builders.audio_data import split_entries_for
from audiolvm.builders.runs import read_run_config
from audiolvm.config import ExperimentConfig, config_from_dict
from audiolvm.data import CorpusError

log = logging.getLogger("audiolvm.report")


def corpus_voices(run: Path, speakers: set[str]) -> dict[str, Path]:
    """An utterance of each of ``speakers`` (its first by name) from the corpus the audio run ``run`` was trained on,
    by speaker; a speaker the corpus lacks is left out, and a corpus that is not there (moved, or a path relative to
    another folder) gives none, with a warning."""
    config_path = run / "config.json"
    if not speakers or not config_path.is_file():
        return {}
    cfg = config_from_dict(read_run_config(config_path), str(config_path), schema=ExperimentConfig)
    try:
        _, entries = split_entries_for(cfg, "all")
    except CorpusError as exc:
        log.warning("no real voices of %s beside the conversions: %s", ", ".join(sorted(speakers)), exc)
        return {}
    found: dict[str, Path] = {}
    for entry, _ in sorted(entries, key=lambda es: es[0].utterance):
        if entry.speaker in speakers and entry.speaker not in found:
            found[entry.speaker] = Path(entry.path)
    return found
