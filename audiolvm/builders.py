"""The one place that maps config names to classes. Models take plain typed arguments."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from audiolvm.bottleneck import Bottleneck, IdentityBottleneck, VectorQuantizerEMA
from audiolvm.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PriorConfig,
    PriorExperimentConfig,
    config_from_dict,
)
from audiolvm.data import CropDataset, open_corpus, split_entries
from audiolvm.data.codes import CodeStore
from audiolvm.engine.checkpoint import latest_checkpoint, load_weights
from audiolvm.losses import MultiResolutionSTFTLoss
from audiolvm.models import AudioReconstructionObjective, MultiLevelAutoencoder
from audiolvm.models.audio_vqvae import audio_autoencoder
from audiolvm.models.priors import Prior
from audiolvm.models.speaker import SpeakerConditioner


def build_bottleneck(cfg: ModelConfig, level: int = 0) -> Bottleneck:
    if cfg.bottleneck == "vq":
        vq = cfg.vq
        return VectorQuantizerEMA(
            num_codes=cfg.per_level("vq.num_codes")[level], dim=vq.dim, beta=cfg.per_level("vq.beta")[level],
            decay=vq.decay, dead_threshold=vq.dead_threshold, init=vq.init,
        )
    if cfg.bottleneck == "identity":
        return IdentityBottleneck()
    raise ConfigError(f"model.bottleneck={cfg.bottleneck!r} is unknown; use 'vq' or 'identity'")


def build_model(cfg: ModelConfig, sample_rate: int = 16000) -> MultiLevelAutoencoder:
    """One :class:`Autoencoder` per level on the waveform (level l uses all strides up to l), with a
    speaker table (and encoder) when ``cfg.speaker.levels`` names speaker-conditioned decoders."""
    if cfg.kind != "audio_vqvae":
        raise ConfigError(f"model.kind={cfg.kind!r} is unknown; use 'audio_vqvae'")
    if not cfg.strides or any(not level for level in cfg.strides):
        raise ConfigError(f"model.strides={cfg.strides}: give a non-empty list of strides per level")
    spk = cfg.speaker
    bad = [i for i in spk.levels if not 0 <= i < cfg.num_levels]
    if bad:
        raise ConfigError(f"model.speaker.levels={spk.levels}: level {bad[0]} does not exist; the model has levels "
                          f"0..{cfg.num_levels - 1} (model.strides)")
    if spk.levels and not spk.names:
        raise ConfigError("model.speaker.names is empty: `audiolvm train` fills it from the training corpus; "
                          "building a speaker-conditioned model by hand needs the list of training speakers")
    levels, strides = [], []
    for i, level_strides in enumerate(cfg.strides):
        strides = strides + list(level_strides)
        levels.append(audio_autoencoder(
            build_bottleneck(cfg, i), latent_dim=cfg.vq.dim, width=cfg.width, strides=strides,
            depth=cfg.depth, dilation_growth=cfg.dilation_growth, checkpoint_stages=cfg.checkpoint_stages,
            speaker_dim=spk.dim if i in spk.levels else 0, speaker_mode=spk.mode,
        ))
    speaker = None
    if spk.levels:
        speaker = SpeakerConditioner(spk.names, spk.dim, encoder=spk.encoder, sample_rate=sample_rate,
                                     n_mels=spk.n_mels, encoder_mix=spk.encoder_mix)
    return MultiLevelAutoencoder(levels, mode=cfg.mode, latent_dim=cfg.vq.dim, speaker=speaker,
                                 speaker_levels=spk.levels)


def build_objective(cfg: ExperimentConfig) -> AudioReconstructionObjective:
    s = cfg.loss.stft
    stft = MultiResolutionSTFTLoss(s.fft_sizes, s.hop_sizes, s.win_sizes)
    weights = dict(cfg.loss.weights)
    if cfg.model.bottleneck != "vq":
        weights = {k: v for k, v in weights.items() if not k.startswith("vq/")}
    return AudioReconstructionObjective(weights, stft, waveform=cfg.loss.waveform,
                                        level_weights=cfg.model.per_level("level_weights"),
                                        speaker=bool(cfg.model.speaker.levels))


def build_corpus(cfg: DataConfig):  # noqa: ANN201 - returns (reader, train entries, valid entries)
    reader = open_corpus(cfg.root, kind=cfg.kind)
    entries = reader.entries()
    if not entries:
        raise ConfigError(f"data.root={cfg.root!r}: no usable audio files (all were skipped)")
    train, valid = split_entries(entries, cfg.valid_fraction, by=cfg.split_by, seed=cfg.split_seed)
    return reader, train, valid


SPLITS = ("train", "valid", "all")


def split_entries_for(cfg: ExperimentConfig, split: str, root: str | None = None):  # noqa: ANN201
    """(reader, [(entry, split name), ...]) for ``split`` of the config's corpus (or of ``root``,
    split with the same settings). ``all`` gives train then valid."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is unknown; use one of {SPLITS}")
    data = cfg.data if root is None else dataclasses.replace(cfg.data, root=str(root), kind="auto")
    reader, train, valid = build_corpus(data)
    chosen = {"train": [(e, "train") for e in train], "valid": [(e, "valid") for e in valid]}
    return reader, chosen["train"] + chosen["valid"] if split == "all" else chosen[split]


def build_datasets(cfg: ExperimentConfig) -> tuple[CropDataset, CropDataset | None]:
    reader, train, valid = build_corpus(cfg.data)
    crop = int(round(cfg.data.crop_seconds * cfg.data.sample_rate))
    common = {"crop_samples": crop, "sample_rate": cfg.data.sample_rate}
    train_ds = CropDataset(reader, train, seed=cfg.train.seed, **common)
    valid_ds = None
    if valid:
        valid_ds = CropDataset(reader, valid, seed=cfg.train.seed, random=False, speakers=train_ds.speakers, **common)
    return train_ds, valid_ds


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """Find (weights.safetensors, config.json) from a run folder, a checkpoint folder or a file."""
    path = Path(path)
    if path.is_file():
        weights, config = path, path.parent / "config.json"
    elif (path / "model.safetensors").is_file():
        weights, config = path / "model.safetensors", path / "config.json"
    elif (latest := latest_checkpoint(path / "checkpoints")) is not None:
        weights, config = latest / "model.safetensors", latest / "config.json"
    else:
        raise FileNotFoundError(
            f"{path}: no model.safetensors here or under checkpoints/; pass a run folder written by "
            "'audiolvm train', one of its checkpoints/step_* folders, or a .safetensors file"
        )
    if not config.is_file():
        raise FileNotFoundError(f"{config}: the config.json that built {weights.name} is missing")
    return weights, config


def load_model(path: str | Path) -> tuple[MultiLevelAutoencoder, ExperimentConfig]:
    """Rebuild a trained model from its saved config and safetensors weights (eval mode)."""
    weights, config_path = resolve_checkpoint(path)
    cfg = config_from_dict(json.loads(config_path.read_text()), source=str(config_path))
    model = build_model(cfg.model, cfg.data.sample_rate)
    missing, unexpected = model.load_state_dict(load_weights(weights), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights}: weights do not match the model in {config_path} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return model.eval(), cfg


# ----------------------------------------------------------------------------------------- priors
PRIOR_KINDS = ("transformer", "upsampler", "pixelcnn1d")


def resolve_prior_config(cfg: PriorExperimentConfig, store: CodeStore) -> PriorExperimentConfig:
    """Fill the prior's codebook size, labels and hop ratio from the code folder it trains on."""
    codes, prior = cfg.codes, cfg.prior
    levels = len(store.levels)
    if not 0 <= codes.level < levels:
        raise ConfigError(f"codes.level={codes.level}: {store.root} has levels 0..{levels - 1}")
    if prior.kind not in PRIOR_KINDS:
        raise ConfigError(f"prior.kind={prior.kind!r} is unknown; use one of {PRIOR_KINDS}")
    if (prior.kind == "upsampler") != (codes.upper_level is not None):
        raise ConfigError("prior.kind=upsampler needs codes.upper_level (the level above), and only it does")
    upsample, upper_k = 1, 0
    if codes.upper_level is not None:
        if not codes.level < codes.upper_level < levels:
            raise ConfigError(f"codes.upper_level={codes.upper_level} must be above codes.level={codes.level}")
        upsample = store.levels[codes.upper_level].hop // store.levels[codes.level].hop
        upper_k = store.levels[codes.upper_level].num_codes
    labels = sorted({it.speaker for it in store.items}) if prior.use_labels else []
    prior = dataclasses.replace(prior, num_codes=store.levels[codes.level].num_codes, labels=labels,
                                upsample=upsample, upper_num_codes=upper_k)
    return dataclasses.replace(cfg, prior=prior)


def build_prior(cfg: PriorConfig) -> Prior:
    """A prior from a resolved config (``num_codes`` etc. filled by :func:`resolve_prior_config`)."""
    from audiolvm.models.priors import CausalTransformerPrior, GatedPixelCNN1d, UpsamplerPrior

    common = {"num_codes": cfg.num_codes, "num_labels": len(cfg.labels)}
    if cfg.num_codes < 1:
        raise ConfigError("prior.num_codes is 0: resolve the config against a code folder first")
    if cfg.kind == "transformer":
        return CausalTransformerPrior(context=cfg.context, dim=cfg.dim, layers=cfg.layers, heads=cfg.heads,
                                      dropout=cfg.dropout, **common)
    if cfg.kind == "upsampler":
        return UpsamplerPrior(num_upper_codes=cfg.upper_num_codes, upsample=cfg.upsample, context=cfg.context,
                              dim=cfg.dim, layers=cfg.layers, heads=cfg.heads, dropout=cfg.dropout, **common)
    if cfg.kind == "pixelcnn1d":
        return GatedPixelCNN1d(channels=cfg.dim, layers=cfg.layers, kernel_size=cfg.kernel_size, **common)
    raise ConfigError(f"prior.kind={cfg.kind!r} is unknown; use one of {PRIOR_KINDS}")


def load_prior(path: str | Path) -> tuple[Prior, PriorExperimentConfig]:
    """Rebuild a trained prior from its run folder (config.json + model.safetensors), eval mode."""
    weights, config_path = resolve_checkpoint(path)
    cfg = config_from_dict(json.loads(config_path.read_text()), str(config_path), schema=PriorExperimentConfig)
    prior = build_prior(cfg.prior)
    prior.load_state_dict(load_weights(weights))
    return prior.eval(), cfg


# ---- speaker classifier
def build_classifier(cfg, sample_rate: int):  # noqa: ANN001, ANN201 - ClassifierConfig -> SpeakerClassifier
    """The speaker classifier of a config whose ``speakers`` were filled from the training set."""
    from audiolvm.models.classifier import SpeakerClassifier

    if len(cfg.speakers) < 2:
        raise ConfigError(f"model.speakers={cfg.speakers}: a speaker classifier needs at least two speakers; "
                          "it is filled from the training set by 'audiolvm train-classifier'")
    return SpeakerClassifier(len(cfg.speakers), sample_rate, n_mels=cfg.n_mels, channels=cfg.channels,
                             embed_dim=cfg.embed_dim, dropout=cfg.dropout, speakers=cfg.speakers)


def load_classifier(path: str | Path):  # noqa: ANN201 - (SpeakerClassifier, ClassifierExperimentConfig)
    """Rebuild a trained speaker classifier from its run folder (config.json + model.safetensors), eval mode."""
    from audiolvm.config import ClassifierExperimentConfig

    weights, config_path = resolve_checkpoint(path)
    cfg = config_from_dict(json.loads(config_path.read_text()), str(config_path), schema=ClassifierExperimentConfig)
    model = build_classifier(cfg.model, cfg.data.sample_rate)
    missing, unexpected = model.load_state_dict(load_weights(weights), strict=False)
    if missing or unexpected:
        raise ValueError(f"{weights}: weights do not match the speaker classifier in {config_path} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]}); is this a classifier run?")
    return model.eval(), cfg
