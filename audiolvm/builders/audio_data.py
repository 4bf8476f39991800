"""The audio family's data: the corpus and its splits, training crops with their F0, and the config filled from
the training set (the speaker table's names, the classifier's classes, per-speaker F0 statistics)."""

from __future__ import annotations

import dataclasses
from typing import Any

from audiolvm.builders.audio import check_pitch_config, pitch_settings
from audiolvm.config import ClassifierExperimentConfig, ConfigError, DataConfig, ExperimentConfig, ModelConfig
from audiolvm.data import CorpusReader, CropDataset, Entry, open_corpus, split_entries, unseen_speakers
from audiolvm.data.cache import CachedReader, ResampledCache
from audiolvm.data.pitch import PitchTable

#: the config of a run that trains on crops of a corpus: the audio VQ-VAE or the speaker classifier
AudioRunConfig = ExperimentConfig | ClassifierExperimentConfig


def build_corpus(cfg: DataConfig, unseen: bool = False) -> tuple[CorpusReader, list[Entry], list[Entry]]:
    """The corpus reader and its train / valid entries, without the ``data.unseen_speakers`` held-out speakers
    (``unseen``: their entries instead of the valid ones)."""
    reader = open_corpus(cfg.root, kind=cfg.kind)
    entries = reader.entries()
    if not entries:
        raise ConfigError(f"data.root={cfg.root!r}: no usable audio files (all were skipped)")
    try:
        held = set(unseen_speakers(entries, cfg.unseen_speakers, cfg.split_seed, cfg.unseen_names))
    except ValueError as e:
        raise ConfigError(f"data.{e} (data.root={cfg.root!r})") from None
    seen = [e for e in entries if e.speaker not in held]
    train, valid = split_entries(seen, cfg.valid_fraction, by=cfg.split_by, seed=cfg.split_seed)
    if unseen:
        return reader, train, [e for e in entries if e.speaker in held]
    return reader, train, valid


SPLITS = ("train", "valid", "all", "unseen")


def split_entries_for(cfg: AudioRunConfig, split: str,
                      root: str | None = None) -> tuple[CorpusReader, list[tuple[Entry, str]]]:
    """(reader, [(entry, split name), ...]) for ``split`` of the config's corpus (or of ``root``,
    split with the same settings). ``all`` gives train then valid; ``unseen``, every utterance of the speakers
    held out by ``data.unseen_speakers``."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is unknown; use one of {SPLITS}")
    data = cfg.data if root is None else dataclasses.replace(cfg.data, root=str(root), kind="auto")
    if split == "unseen":
        reader, _, held = build_corpus(data, unseen=True)
        if not held:
            raise ConfigError(f"data.unseen_speakers={data.unseen_speakers}: this run held out no speakers of "
                              f"{data.root}; train with e.g. data.unseen_speakers=3 to convert to unseen voices")
        return reader, [(e, "unseen") for e in held]
    reader, train, valid = build_corpus(data)
    chosen = {"train": [(e, "train") for e in train], "valid": [(e, "valid") for e in valid]}
    return reader, chosen["train"] + chosen["valid"] if split == "all" else chosen[split]


def build_pitch_table(cfg: AudioRunConfig, reader: CorpusReader, entries: list[Entry]) -> PitchTable | None:
    """The cached F0 tracks of ``entries`` for a pitch-aware model (None when ``model.pitch.levels`` is empty)."""
    if not isinstance(cfg.model, ModelConfig) or not check_pitch_config(cfg.model, need_stats=False):
        return None  # e.g. the speaker classifier's config: no pitch path
    settings = pitch_settings(cfg.model, cfg.data.sample_rate)
    return PitchTable.build(reader, entries, settings, root=cfg.data.root, progress=cfg.train.progress)


def build_datasets(cfg: AudioRunConfig) -> tuple[CropDataset, CropDataset | None]:
    """Random training crops and centred validation crops (with their F0 for a pitch-aware model)."""
    reader, train, valid = build_corpus(cfg.data)
    if cfg.data.cache == "resampled":
        cache = ResampledCache.build(reader, train + valid, cfg.data.sample_rate, cfg.data.root,
                                     progress=cfg.train.progress)
        reader = CachedReader(reader, cache) if cache is not None else reader
    elif cfg.data.cache != "none":
        raise ConfigError(f"data.cache={cfg.data.cache!r} is unknown; use 'none' or 'resampled'")
    crop = int(round(cfg.data.crop_seconds * cfg.data.sample_rate))
    common: dict[str, Any] = {"crop_samples": crop, "sample_rate": cfg.data.sample_rate,
                              "pitch": build_pitch_table(cfg, reader, train + valid)}
    train_ds = CropDataset(reader, train, seed=cfg.train.seed, **common)
    valid_ds = None
    if valid:
        valid_ds = CropDataset(reader, valid, seed=cfg.train.seed, random=False, speakers=train_ds.speakers, **common)
    return train_ds, valid_ds


# ---- the config filled from the training set
def training_speakers(given: list[str], field: str, train_ds: CropDataset, valid_ds: CropDataset | None,
                      data: DataConfig, why: str) -> list[str]:
    """The training set's speakers, for a config ``field`` that lists them (a speaker table, a classifier's
    classes). Names already in the config must match the corpus, and every held-out speaker must be a
    training speaker (``why`` says what cannot handle an unseen one)."""
    speakers = list(train_ds.speakers)
    if given and list(given) != speakers:
        raise ConfigError(f"{field} lists {len(given)} speakers but the training set of data.root={data.root!r} "
                          f"has {len(speakers)} different ones; remove {field} so that training fills it in")
    unseen = sorted({e.speaker for e in valid_ds.entries} - set(speakers)) if valid_ds is not None else []
    if unseen:
        raise ConfigError(f"data.split_by={data.split_by!r} holds out speakers {unseen[:3]} that {why}; use "
                          "data.split_by: utterance")
    return speakers


def with_speakers(cfg: ExperimentConfig, train_ds: CropDataset, valid_ds: CropDataset | None) -> ExperimentConfig:
    """Fill ``model.speaker.names`` (a speaker-conditioned model's lookup table) from the training set."""
    spk = cfg.model.speaker
    if not spk.levels:
        return cfg
    names = training_speakers(spk.names, "model.speaker.names", train_ds, valid_ds, cfg.data,
                              "the speaker-conditioned decoder (model.speaker.levels) has no table entry for")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speaker=dataclasses.replace(
        spk, names=names)))


def with_pitch_stats(cfg: ExperimentConfig, train_ds: CropDataset) -> ExperimentConfig:
    """Fill ``model.pitch.stats`` (per-speaker ln-F0 mean and std, saved with the model) from the training set."""
    if train_ds.pitch is None:
        return cfg
    stats = train_ds.pitch.speaker_stats(train_ds.entries)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pitch=dataclasses.replace(
        cfg.model.pitch, stats=stats)))


def resolve_audio_config(cfg: ExperimentConfig, train_ds: CropDataset,
                         valid_ds: CropDataset | None) -> ExperimentConfig:
    """``cfg`` filled from its training set (:func:`build_datasets`): the speaker table's names and the
    speakers' F0 statistics, which the saved config carries so that the model can be built again."""
    return with_pitch_stats(with_speakers(cfg, train_ds, valid_ds), train_ds)


def resolve_classifier_config(cfg: ClassifierExperimentConfig, train_ds: CropDataset,
                              valid_ds: CropDataset | None) -> ClassifierExperimentConfig:
    """Fill the speaker classifier's ``model.speakers`` (its classes) from the training set."""
    speakers = training_speakers(cfg.model.speakers, "model.speakers", train_ds, valid_ds, cfg.data,
                                 "a closed-set classifier cannot name")
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speakers=speakers))
