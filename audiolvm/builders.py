"""The one place that maps config names to classes. Models take plain typed arguments."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from audiolvm.bottleneck import Bottleneck, IdentityBottleneck, VectorQuantizerEMA
from audiolvm.config import (
    AdversarialConfig,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    PriorConfig,
    PriorExperimentConfig,
    config_from_dict,
)
from audiolvm.core.files import read_json
from audiolvm.core.pitch import PITCH_METHODS, PitchSettings
from audiolvm.data import CropDataset, open_corpus, split_entries
from audiolvm.data.cache import CachedReader, ResampledCache
from audiolvm.data.codes import CodeStore
from audiolvm.data.manifest import Entry, unseen_speakers
from audiolvm.data.pitch import PitchTable
from audiolvm.data.readers import CorpusReader
from audiolvm.engine.checkpoint import REEXPORT_FIX, latest_checkpoint, load_strict, load_weights
from audiolvm.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audiolvm.losses.balancer import Balancer
from audiolvm.models import AudioReconstructionObjective, MultiLevelAutoencoder
from audiolvm.models.adversarial import ADV_TERMS, AdversarialObjective, Discriminators, balancer_keys
from audiolvm.models.audio_vqvae import audio_autoencoder
from audiolvm.models.chain import ChainStage, SamplingChain
from audiolvm.models.enroll import Enrolment, enroll_speaker
from audiolvm.models.pitch import SYNTHS, PitchConditioner
from audiolvm.models.priors import Prior
from audiolvm.models.speaker import SpeakerAdversary, SpeakerConditioner
from audiolvm.nn.conv1d import ConvEncoder1d, MelEncoder1d
from audiolvm.nn.discriminators import (
    MultiBandSTFTDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleSTFTDiscriminator,
    MultiScaleWaveformDiscriminator,
)
from audiolvm.nn.synth import HarmonicNoiseDecoder, factor_strides


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
    if not 0.0 <= cfg.jitter <= 1.0:
        raise ConfigError(f"model.jitter={cfg.jitter}: a probability in [0, 1] (e.g. 0.12; 0 = off)")
    if spk.adversary < 0 or (spk.adversary and not spk.levels):
        raise ConfigError(f"model.speaker.adversary={spk.adversary}: a gradient-reversal scale >= 0 (e.g. 1; 0 = off) "
                          "on a speaker-conditioned model (model.speaker.levels set)")
    pitch_levels = check_pitch_config(cfg)
    levels, strides = [], []
    for i, level_strides in enumerate(cfg.strides):
        strides = strides + list(level_strides)
        levels.append(audio_autoencoder(
            build_bottleneck(cfg, i), latent_dim=cfg.vq.dim, width=cfg.width, strides=strides,
            depth=cfg.depth, dilation_growth=cfg.dilation_growth, checkpoint_stages=cfg.checkpoint_stages,
            speaker_dim=spk.dim if i in spk.levels else 0, speaker_mode=spk.mode,
            source_dim=2 if i in pitch_levels else 0,
            decoder=synth_decoder(cfg, i, sample_rate) if i in pitch_levels else None,
            encoder=content_encoder(cfg, strides, sample_rate),
        ))
    speaker = adversary = None
    if spk.levels:
        speaker = SpeakerConditioner(spk.names, spk.dim, encoder=spk.encoder, sample_rate=sample_rate,
                                     n_mels=spk.n_mels, encoder_mix=spk.encoder_mix)
        if spk.adversary:
            adversary = SpeakerAdversary(cfg.vq.dim, len(spk.names), spk.adversary_width, spk.adversary,
                                         pool=spk.adversary_pool)
    pitch = None
    if pitch_levels:
        pc = cfg.pitch
        pitch = PitchConditioner(pitch_settings(cfg, sample_rate), pc.stats, spk.names, cfg.vq.dim,
                                 spk.dim if pitch_levels[0] in spk.levels else 0, cfg.hops[pitch_levels[0]],
                                 harmonics=pc.harmonics, width=pc.predictor_width, synth=pc.synth)
    return MultiLevelAutoencoder(levels, mode=cfg.mode, latent_dim=cfg.vq.dim, speaker=speaker,
                                 speaker_levels=spk.levels, pitch=pitch, pitch_levels=pitch_levels,
                                 jitter=cfg.jitter, adversary=adversary)


def content_encoder(cfg: ModelConfig, strides: list[int], sample_rate: int) -> nn.Module | None:
    """A level's encoder when it is not the default waveform one: log-mel input (``model.encoder_input: mel``)
    and / or each item's output normalised over time before the VQ (``model.content_norm: instance``); None for
    the waveform encoder that :func:`audio_autoencoder` builds itself."""
    hop = math.prod(strides)
    if cfg.encoder_input not in ("wave", "mel"):
        raise ConfigError(f"model.encoder_input={cfg.encoder_input!r} is unknown; use 'wave' or 'mel'")
    if cfg.content_norm not in ("none", "instance"):
        raise ConfigError(f"model.content_norm={cfg.content_norm!r} is unknown; use 'none' or 'instance'")
    encoder: nn.Module | None = None
    if cfg.encoder_input == "mel":
        if cfg.mel_hop < 1 or hop % cfg.mel_hop:
            raise ConfigError(f"model.mel_hop={cfg.mel_hop} must divide every level's hop (model.strides: {cfg.hops})")
        encoder = MelEncoder1d(cfg.vq.dim, cfg.width, hop, cfg.depth, sample_rate, cfg.mel_bins, cfg.mel_hop,
                               dilation_growth=cfg.dilation_growth)
    if cfg.content_norm == "instance":
        encoder = nn.Sequential(encoder or ConvEncoder1d(1, cfg.vq.dim, cfg.width, strides, cfg.depth,
                                                         cfg.dilation_growth, cfg.checkpoint_stages),
                                nn.InstanceNorm1d(cfg.vq.dim))
    return encoder


def synth_decoder(cfg: ModelConfig, level: int, sample_rate: int) -> HarmonicNoiseDecoder | None:
    """Level ``level``'s harmonic-plus-noise decoder (``model.pitch.synth: hpn``); None for the NSF conv decoder."""
    p, spk = cfg.pitch, cfg.speaker
    if p.synth != "hpn":
        return None
    return HarmonicNoiseDecoder(cfg.vq.dim, p.synth_width or cfg.width, factor_strides(cfg.hops[level] // p.hop),
                                p.synth_depth or cfg.depth, p.hop, sample_rate, p.harmonics, p.noise_bands,
                                cfg.dilation_growth, cond_dim=spk.dim if level in spk.levels else 0,
                                cond_mode=spk.mode)


def pitch_settings(cfg: ModelConfig, sample_rate: int) -> PitchSettings:
    """The F0 extractor settings of ``model.pitch`` at the data's rate."""
    p = cfg.pitch
    return PitchSettings(method=p.method, sample_rate=sample_rate, hop=p.hop, fmin=p.fmin, fmax=p.fmax)


def check_pitch_config(cfg: ModelConfig, need_stats: bool = True) -> list[int]:
    """``model.pitch.levels`` (sorted) after checking levels, hops, extractor and (``need_stats``) the speakers'
    F0 statistics; [] when the pitch path is off."""
    p = cfg.pitch
    levels = sorted(set(p.levels))
    if not levels:
        return []
    bad = [i for i in levels if not 0 <= i < cfg.num_levels]
    if bad:
        raise ConfigError(f"model.pitch.levels={p.levels}: level {bad[0]} does not exist; the model has levels "
                          f"0..{cfg.num_levels - 1} (model.strides)")
    if p.synth not in SYNTHS:
        raise ConfigError(f"model.pitch.synth={p.synth!r} is unknown; use one of {SYNTHS}")
    if p.method not in PITCH_METHODS:
        raise ConfigError(f"model.pitch.method={p.method!r} is unknown; use one of {PITCH_METHODS}")
    odd = [cfg.hops[i] for i in levels if p.hop < 1 or cfg.hops[i] % p.hop]
    if odd:
        raise ConfigError(f"model.pitch.hop={p.hop} must divide the hop of every pitch level (hops {odd}); "
                          "use e.g. 64 for code hops that are multiples of 64")
    if need_stats and not p.stats:
        raise ConfigError("model.pitch.stats is empty: `audiolvm train` fills it from the training corpus's F0; "
                          "building a pitch-aware model by hand needs {speaker: [mean, std]} of ln F0 and '*'")
    return levels


DISCRIMINATORS: dict[str, Callable[[AdversarialConfig], nn.Module]] = {
    "mpd": lambda a: MultiPeriodDiscriminator(a.periods, channels=[a.channels, 2 * a.channels, 4 * a.channels,
                                                                   4 * a.channels]),
    "msd": lambda a: MultiScaleWaveformDiscriminator(a.scales, channels=[a.channels, 4 * a.channels,
                                                                         8 * a.channels]),
    "msstft": lambda a: MultiScaleSTFTDiscriminator(a.fft_sizes, a.channels),
    "mbstft": lambda a: MultiBandSTFTDiscriminator(a.fft_sizes, channels=a.channels),
}


def build_discriminators(cfg: ExperimentConfig) -> Discriminators:
    """``adv.discriminators`` by kind, and the balancer's state when ``adv.balancer`` is on."""
    a = cfg.adv
    unknown = [k for k in a.discriminators if k not in DISCRIMINATORS]
    if unknown or len(set(a.discriminators)) != len(a.discriminators):
        raise ConfigError(f"adv.discriminators={a.discriminators} must name each of {sorted(DISCRIMINATORS)} at most "
                          "once (mpd: HiFi-GAN multi-period, msd: multi-scale waveform, msstft: EnCodec STFT, mbstft: "
                          "DAC multi-band STFT)")
    too_long = [n for n in a.fft_sizes if n // 2 >= int(cfg.data.crop_seconds * cfg.data.sample_rate)]
    if too_long and {"msstft", "mbstft"} & set(a.discriminators):
        raise ConfigError(f"adv.fft_sizes {too_long} need crops longer than n_fft / 2 samples; data.crop_seconds="
                          f"{cfg.data.crop_seconds} is {int(cfg.data.crop_seconds * cfg.data.sample_rate)} samples")
    balancer = None
    if a.balancer:
        balancer = Balancer(balancer_keys(cfg.model.num_levels, cfg.loss.weights), a.balancer_total, a.balancer_decay)
    return Discriminators({k: DISCRIMINATORS[k](a) for k in a.discriminators}, balancer)


def build_objective(cfg: ExperimentConfig) -> AudioReconstructionObjective | AdversarialObjective:
    """The reconstruction objective; wrapped in :class:`AdversarialObjective` when ``adv.discriminators`` names
    any."""
    weights = dict(cfg.loss.weights)
    adv_weights = {k: weights.pop(k) for k in ADV_TERMS if k in weights}
    base = build_reconstruction_objective(cfg, weights)
    if not cfg.adv.discriminators:
        if any(adv_weights.values()):
            raise ConfigError(f"loss.weights names {sorted(adv_weights)} but adv.discriminators is empty; name the "
                              "discriminators (e.g. adv.discriminators=[mpd,msstft]) or remove those weights")
        return base
    return AdversarialObjective(base, build_discriminators(cfg), cfg.adv.loss, adv_weights, cfg.adv.start_step,
                                cfg.adv.levels or None)


def build_reconstruction_objective(cfg: ExperimentConfig, weights: dict[str, float]) -> AudioReconstructionObjective:
    s = cfg.loss.stft
    stft = MultiResolutionSTFTLoss(s.fft_sizes, s.hop_sizes, s.win_sizes)
    if cfg.model.bottleneck != "vq":
        weights = {k: v for k, v in weights.items() if not k.startswith("vq/")}
    if weights.get("mel", 1.0) == 0.0:
        del weights["mel"]  # a zero weight switches the term off (a config can unset what its base sets)
    mel = MultiScaleMelLoss(cfg.data.sample_rate, cfg.loss.mel_fft_sizes) if "mel" in weights else None
    return AudioReconstructionObjective(weights, stft, waveform=cfg.loss.waveform,
                                        level_weights=cfg.model.per_level("level_weights"),
                                        speaker=bool(cfg.model.speaker.levels), mel=mel,
                                        pitch=bool(cfg.model.pitch.levels))


def enroll_voice(model: MultiLevelAutoencoder, cfg: ExperimentConfig, name: str, clips: list[torch.Tensor],
                 **fit: Any) -> Enrolment:
    """Fit a new voice ``name`` from ``clips`` (waveforms at the run's rate) with the run's own reconstruction terms,
    crop length and batch size, and add it to ``model`` (:func:`enroll_speaker`, :meth:`add_speaker`); ``fit``:
    ``level``, ``steps``, ``lr``, ``seed``, ``time_limit``."""
    if model.speaker is not None:
        model.speaker.check_new_name(name)  # before the fit, not after it
    objective = build_reconstruction_objective(cfg, cfg.loss.weights)
    crop = int(round(cfg.data.crop_seconds * cfg.data.sample_rate))
    result = enroll_speaker(model, clips, lambda r, a: objective.weighted(objective.recon_terms(r, a)), crop=crop,
                            batch=cfg.data.batch_size, **fit)
    model.add_speaker(name, result.vector, result.f0_stats)
    return result


def enrolled_config(cfg: ExperimentConfig, model: MultiLevelAutoencoder, name: str,
                    result: Enrolment) -> ExperimentConfig:
    """``cfg`` with ``model``'s speakers (after enrolling ``name``) and, with a pitch path, its ln-F0 stats."""
    stats = dict(cfg.model.pitch.stats)
    if result.f0_stats is not None:
        stats[name] = [float(x) for x in result.f0_stats]
    spk = dataclasses.replace(cfg.model.speaker, names=model.speaker_names)
    pitch = dataclasses.replace(cfg.model.pitch, stats=stats)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, speaker=spk, pitch=pitch))


def build_corpus(cfg: DataConfig, unseen: bool = False):  # noqa: ANN201 - (reader, train entries, valid entries)
    """The corpus reader and its train / valid entries, without the ``data.unseen_speakers`` held-out speakers
    (``unseen``: their entries instead of the valid ones)."""
    reader = open_corpus(cfg.root, kind=cfg.kind)
    entries = reader.entries()
    if not entries:
        raise ConfigError(f"data.root={cfg.root!r}: no usable audio files (all were skipped)")
    try:
        held = set(unseen_speakers(entries, cfg.unseen_speakers, cfg.split_seed))
    except ValueError as e:
        raise ConfigError(f"data.{e} (data.root={cfg.root!r})") from None
    seen = [e for e in entries if e.speaker not in held]
    train, valid = split_entries(seen, cfg.valid_fraction, by=cfg.split_by, seed=cfg.split_seed)
    if unseen:
        return reader, train, [e for e in entries if e.speaker in held]
    return reader, train, valid


SPLITS = ("train", "valid", "all", "unseen")
RUN_JSON_FIX = "copy it back from a checkpoints/step_* folder of the run, or train again"
CODES_JSON_FIX = "encode the codes again with 'audiolvm encode'"


def split_entries_for(cfg: ExperimentConfig, split: str, root: str | None = None):  # noqa: ANN201
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


def build_pitch_table(cfg: ExperimentConfig, reader: CorpusReader, entries: list[Entry]) -> PitchTable | None:
    """The cached F0 tracks of ``entries`` for a pitch-aware model (None when ``model.pitch.levels`` is empty)."""
    if not isinstance(cfg.model, ModelConfig) or not check_pitch_config(cfg.model, need_stats=False):
        return None  # e.g. the speaker classifier's config: no pitch path
    settings = pitch_settings(cfg.model, cfg.data.sample_rate)
    return PitchTable.build(reader, entries, settings, root=cfg.data.root, progress=cfg.train.progress)


def build_datasets(cfg: ExperimentConfig) -> tuple[CropDataset, CropDataset | None]:
    """Random training crops and centred validation crops (with their F0 for a pitch-aware model)."""
    reader, train, valid = build_corpus(cfg.data)
    if cfg.data.cache == "resampled":
        cache = ResampledCache.build(reader, train + valid, cfg.data.sample_rate, cfg.data.root,
                                     progress=cfg.train.progress)
        reader = CachedReader(reader, cache) if cache is not None else reader
    elif cfg.data.cache != "none":
        raise ConfigError(f"data.cache={cfg.data.cache!r} is unknown; use 'none' or 'resampled'")
    crop = int(round(cfg.data.crop_seconds * cfg.data.sample_rate))
    common = {"crop_samples": crop, "sample_rate": cfg.data.sample_rate,
              "pitch": build_pitch_table(cfg, reader, train + valid)}
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


def run_kind(path: str | Path) -> str:
    """Which command wrote a run folder, from the sections of its ``config.json``: ``audio`` (train),
    ``prior`` (train-prior), ``classifier`` (train-classifier), ``image`` (train-image) or
    ``image_prior`` (train-image-prior)."""
    _, config_path = resolve_checkpoint(path)
    raw = read_json(config_path, RUN_JSON_FIX)
    if not isinstance(raw, dict):
        raise ValueError(f"{config_path}: expected a mapping of config sections")
    if "vqvae" in raw and "prior" in raw:
        return "image_prior"
    if "codes" in raw and "prior" in raw:
        return "prior"
    model = raw.get("model", {})
    if "image_shape" in model:
        return "image"
    if "speakers" in model and "embed_dim" in model:
        return "classifier"
    return "audio"


def load_run(path: str | Path, schema: type, build: Callable[[Any], nn.Module], what: str) -> tuple[Any, Any]:
    """``(module in eval mode, config)`` of a run folder (or checkpoint, or .safetensors file): the saved
    ``config.json`` read with ``schema``, the module built from it by ``build(cfg)``, and the safetensors
    weights loaded strictly (never unpickled). A mismatch names both files and the ``what`` expected."""
    weights, config_path = resolve_checkpoint(path)
    cfg = config_from_dict(read_json(config_path, RUN_JSON_FIX), str(config_path), schema=schema)
    module = build(cfg)
    load_strict(module, load_weights(weights), weights, "keep the weights and config.json of one run together",
                f"the {what} that {config_path} builds")
    return module.eval(), cfg


def load_model(path: str | Path) -> tuple[MultiLevelAutoencoder, ExperimentConfig]:
    """Rebuild a trained audio VQ-VAE from its saved config and safetensors weights (eval mode)."""
    return load_run(path, ExperimentConfig, lambda cfg: build_model(cfg.model, cfg.data.sample_rate), "audio model")


def load_speaker_model(path: str | Path, level: int = 0) -> tuple[MultiLevelAutoencoder, ExperimentConfig]:
    """:func:`load_model` for a command that needs a speaker-conditioned decoder at ``level`` (convert, enroll)."""
    model, cfg = load_model(path)
    if model.speaker is None:
        raise ValueError(f"{path}: this model's decoder is not speaker-conditioned (model.speaker.levels is empty); "
                         "train one with model.speaker.levels set (e.g. configs/demo/speech_vqvae.yaml)")
    if level not in model.speaker_levels:
        raise ValueError(f"--level {level}: speaker-conditioned levels of this model are {model.speaker_levels}")
    return model, cfg


def load_discriminators(path: str | Path) -> Discriminators | None:
    """The discriminators saved beside an adversarial run's model (``<run>/disc.safetensors``), in eval mode;
    None for a run trained without them."""
    weights, config = resolve_checkpoint(path)
    cfg = config_from_dict(read_json(config), str(config))
    file = weights.with_name("disc.safetensors")
    if not cfg.adv.discriminators or not file.is_file():
        return None
    disc = build_discriminators(cfg)
    load_strict(disc, load_weights(file), file, f"it was not written with {config}; {REEXPORT_FIX}")
    return disc.eval()


# ----------------------------------------------------------------------------------------- priors
PRIOR_KINDS = ("transformer", "upsampler", "pixelcnn1d", "pixelcnn2d")


def resolve_prior_config(cfg: PriorExperimentConfig, store: CodeStore) -> PriorExperimentConfig:
    """Fill the prior's codebook size, labels and hop ratio from the code folder it trains on."""
    codes, prior = cfg.codes, cfg.prior
    levels = len(store.levels)
    if not 0 <= codes.level < levels:
        raise ConfigError(f"codes.level={codes.level}: {store.root} has levels 0..{levels - 1}")
    if prior.kind not in PRIOR_KINDS:
        raise ConfigError(f"prior.kind={prior.kind!r} is unknown; use one of {PRIOR_KINDS}")
    if prior.kind == "pixelcnn2d":
        raise ConfigError("prior.kind=pixelcnn2d models 2-D code maps of an image VQ-VAE; audio codes are 1-D "
                          "(use transformer or pixelcnn1d), and image priors train with 'audiolvm train-image-prior'")
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
    from audiolvm.models.priors import CausalTransformerPrior, GatedPixelCNN1d, GatedPixelCNN2d, UpsamplerPrior

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
    if cfg.kind == "pixelcnn2d":
        return GatedPixelCNN2d(channels=cfg.dim, layers=cfg.layers, kernel_size=cfg.kernel_size, **common)
    raise ConfigError(f"prior.kind={cfg.kind!r} is unknown; use one of {PRIOR_KINDS}")


def load_prior(path: str | Path) -> tuple[Prior, PriorExperimentConfig]:
    """Rebuild a trained prior from its run folder (config.json + model.safetensors), eval mode."""
    return load_run(path, PriorExperimentConfig, lambda cfg: build_prior(cfg.prior), "prior")


def chain_stage(prior: Prior, cfg: PriorExperimentConfig) -> ChainStage:
    """A loaded prior as a stage of a :class:`SamplingChain`."""
    return ChainStage(prior, cfg.codes.level, cfg.codes.upper_level, cfg.prior.labels)


def check_code_levels(model: MultiLevelAutoencoder, levels: list[tuple[int, int]], what: str, fix: str) -> None:
    """Codes with ``(hop, K)`` per level ``levels`` can be decoded by ``model`` only if its levels are the same."""
    ours = [(lv.hop, lv.bottleneck.num_codes) for lv in model.levels]
    if levels != ours:
        raise ValueError(f"{what}: (hop, K) per level {levels}, the VQ-VAE's {ours}; {fix}")


def check_prior_matches(prior_run: str | Path, cfg: PriorExperimentConfig, vqvae: str | Path,
                        model: MultiLevelAutoencoder) -> None:
    """Refuse a prior trained on another VQ-VAE's codes: the code folder it trained on (when still there)
    must have this model's hop and codebook size per level and have been encoded by these very weights."""
    meta_path = Path(cfg.codes.root) / "meta.json"
    if not meta_path.is_file():
        return  # the codes are gone: the chain still checks the codebook size of the modelled level
    meta = read_json(meta_path, CODES_JSON_FIX)
    check_code_levels(model, [(lv["hop"], lv["num_codes"]) for lv in meta.get("levels", [])],
                      f"prior {prior_run} trained on codes of {meta_path}",
                      f"sample through the VQ-VAE that wrote them, not {vqvae}")
    encoded_by = Path(meta.get("checkpoint", ""))
    weights = resolve_checkpoint(vqvae)[0]
    if encoded_by.is_file() and encoded_by.resolve() != weights.resolve() and not _same_file(encoded_by, weights):
        raise ValueError(f"prior {prior_run} trained on codes of {encoded_by} ({meta_path}), not of {weights}: the "
                         "codebooks differ, so its codes would decode to noise; pass that VQ-VAE with --vqvae")


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def load_chain(vqvae: str | Path, priors: list[str | Path]) -> tuple[SamplingChain, ExperimentConfig]:
    """The sampling chain of a VQ-VAE run and prior runs listed top-down (top prior, then upsamplers)."""
    model, cfg = load_model(vqvae)
    return SamplingChain(model, load_stages(vqvae, model, priors), cfg.data.sample_rate), cfg


def load_stages(vqvae: str | Path, model: MultiLevelAutoencoder, priors: list[str | Path]) -> list[ChainStage]:
    """Prior runs (top-down) as chain stages, each checked against the VQ-VAE (:func:`check_prior_matches`)."""
    stages = []
    for run in priors:
        prior, pcfg = load_prior(run)
        check_prior_matches(run, pcfg, vqvae, model)
        stages.append(chain_stage(prior, pcfg))
    return stages


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

    return load_run(path, ClassifierExperimentConfig, lambda cfg: build_classifier(cfg.model, cfg.data.sample_rate),
                    "speaker classifier")


# ---- image family
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "dsprites", "lfw")
IMAGE_KINDS = ("vae", "cvae", "m2", "vqvae")


def build_image_datasets(cfg):  # noqa: ANN001, ANN201 - ImageExperimentConfig -> (train, test) datasets
    """(train, test) of ``cfg.data``; the test set is the fixed seeded split (MNIST: its own test file).
    M2 training sets keep the labels of a class-stratified ``loss.labelled`` fraction only."""
    from audiolvm.data.images import digits_split, lfw_subset_dataset, mnist_dataset
    from audiolvm.data.semi import PartlyLabelled, labelled_mask
    from audiolvm.data.sprites import DSpritesStyle

    d = cfg.data
    common = {"binarize": d.binarize, "threshold": d.threshold, "seed": cfg.train.seed}
    if d.dataset == "digits":
        train, test = digits_split(d.num_test, d.split_seed, **common)
    elif d.dataset in ("mnist", "fashion_mnist"):
        if not d.root:
            raise ConfigError(f"data.dataset={d.dataset}: set data.root to a folder of MNIST-format IDX files "
                              "or a .npz (x_train, y_train, x_test, y_test); nothing is downloaded")
        train, test = (mnist_dataset(d.root, split, **common) for split in ("train", "test"))
    elif d.dataset == "lfw":
        train, test = lfw_subset_dataset(**common).split(d.num_test, d.split_seed)
    elif d.dataset == "dsprites":
        if d.binarize == "dynamic":
            raise ConfigError("data.binarize=dynamic: dsprites images are already binary; use none or static")
        from audiolvm.data.images import split_indices

        pool = DSpritesStyle.subset(d.subset, seed=d.split_seed).indices
        tr, te = split_indices(len(pool), d.num_test, d.split_seed)
        train, test = DSpritesStyle(pool[tr], cache=True), DSpritesStyle(pool[te], cache=True)
    else:
        raise ConfigError(f"data.dataset={d.dataset!r} is unknown; use one of {IMAGE_DATASETS}")
    if cfg.model.kind == "m2":
        train = PartlyLabelled(train, labelled_mask(_image_labels(train), cfg.loss.labelled, d.split_seed))
    return train, test


def _image_labels(ds):  # noqa: ANN001, ANN202 - class ids int64 [N] (-1 when unknown)
    import numpy as np

    if getattr(ds, "labels", None) is not None:
        return ds.labels
    if hasattr(ds, "factor_sizes"):  # dsprites: the shape class
        from audiolvm.data.sprites import index_to_factors

        return index_to_factors(ds.indices)[:, 0]
    return np.full(len(ds), -1, dtype=np.int64)


def resolve_image_config(cfg, train_ds):  # noqa: ANN001, ANN201 - ImageExperimentConfig filled from the data
    """Fill ``model.image_shape`` and (cvae / m2) ``model.num_classes`` from the training set."""
    base = getattr(train_ds, "dataset", train_ds)
    shape = [int(s) for s in train_ds[0]["image"].shape]
    num_classes = cfg.model.num_classes
    if cfg.model.kind in ("cvae", "m2"):
        labels = _image_labels(base)
        if (labels < 0).all():
            raise ConfigError(f"model.kind={cfg.model.kind}: data.dataset={cfg.data.dataset} has no labels")
        num_classes = int(labels.max()) + 1
    model = dataclasses.replace(cfg.model, image_shape=shape, num_classes=num_classes)
    return dataclasses.replace(cfg, model=model)


def _image_likelihood(cfg):  # noqa: ANN001, ANN202
    from audiolvm.losses.likelihoods import make_likelihood

    args = dict(cfg.likelihood_args)
    if cfg.likelihood == "gaussian" and args.get("scale") == "pixel":
        args.setdefault("shape", tuple(cfg.image_shape))
    try:
        return make_likelihood(cfg.likelihood, channels=cfg.image_shape[0], **args)
    except TypeError as exc:
        raise ConfigError(f"model.likelihood_args={args} do not fit likelihood {cfg.likelihood!r}: {exc}") from exc


def _image_nets(cfg, in_features: int, out_channels: int, cond_dim: int):  # noqa: ANN001, ANN202
    """(encoder -> ``in_features`` vector, decoder vector -> ``out_channels x H x W``), MLP or conv."""
    from audiolvm.nn.conv2d import ConvDecoder2d, ConvEncoder2d
    from audiolvm.nn.mlp import MLPDecoder, MLPEncoder

    c, h, w = cfg.image_shape
    d = cfg.latent_dim
    if cfg.encoder == "mlp":
        enc = MLPEncoder((c, h, w), in_features, cfg.hidden, cond_dim=cond_dim, activation=cfg.activation)
        dec = MLPDecoder(d, (out_channels, h, w), list(reversed(cfg.hidden)), cond_dim=cond_dim,
                         activation=cfg.activation)
        return enc, dec
    if cfg.encoder == "conv":
        common = {"width": cfg.width, "factors": cfg.factors, "depth": cfg.depth, "cond_dim": cond_dim}
        return (ConvEncoder2d(c, in_features, input_size=(h, w), **common),
                ConvDecoder2d(d, out_channels, output_size=(h, w), **common))
    raise ConfigError(f"model.encoder={cfg.encoder!r} is unknown; use 'mlp' or 'conv'")


def build_image_model(cfg):  # noqa: ANN001, ANN201 - ImageModelConfig -> VAE | ConditionalVAE | M2 | Autoencoder
    """The image model of a resolved config (``image_shape`` and ``num_classes`` filled by training)."""
    from audiolvm.bottleneck.gaussian import GaussianBottleneck
    from audiolvm.models.image_vqvae import image_vqvae
    from audiolvm.models.m2 import M2
    from audiolvm.models.pixelcnn_decoder import PixelCNNDecoder
    from audiolvm.models.vae import VAE, ConditionalVAE

    if cfg.kind not in IMAGE_KINDS:
        raise ConfigError(f"model.kind={cfg.kind!r} is unknown; use one of {IMAGE_KINDS}")
    if len(cfg.image_shape) != 3:
        raise ConfigError(f"model.image_shape={cfg.image_shape}: expected [C, H, W]; 'audiolvm train-image' fills "
                          "it from the data")
    if cfg.kind == "vqvae":
        vq = cfg.vq
        bottleneck = VectorQuantizerEMA(num_codes=vq.num_codes, dim=vq.dim, beta=vq.beta, decay=vq.decay,
                                        dead_threshold=vq.dead_threshold, init=vq.init)
        return image_vqvae(bottleneck, cfg.image_shape[0], cfg.width, cfg.factors, cfg.depth)
    cond_dim = cfg.num_classes if cfg.kind in ("cvae", "m2") else 0
    if cond_dim < 1 and cfg.kind != "vae":
        raise ConfigError(f"model.kind={cfg.kind} needs model.num_classes >= 1 (filled from the data)")
    likelihood = _image_likelihood(cfg)
    if cfg.decoder not in ("default", "pixelcnn"):
        raise ConfigError(f"model.decoder={cfg.decoder!r} is unknown; use 'default' or 'pixelcnn'")
    pixel = cfg.decoder == "pixelcnn"
    out_channels = cfg.pixelcnn_cond_channels if pixel else likelihood.param_channels
    encoder, decoder = _image_nets(cfg, 2 * cfg.latent_dim, out_channels, cond_dim)
    if pixel:
        decoder = PixelCNNDecoder(decoder, out_channels, cfg.image_shape[0], likelihood.param_channels,
                                  channels=cfg.pixelcnn_channels, layers=cfg.pixelcnn_layers)
    parts = (encoder, GaussianBottleneck(samples=cfg.samples), decoder, likelihood, (cfg.latent_dim,))
    if cfg.kind == "vae":
        return VAE(*parts)
    if cfg.kind == "cvae":
        return ConditionalVAE(*parts, num_classes=cfg.num_classes)
    classifier, _ = _image_nets(cfg, cfg.num_classes, 1, 0)
    return M2(*parts, num_classes=cfg.num_classes, classifier=classifier)


def _image_schedule(cfg, name: str):  # noqa: ANN001, ANN202 - ScheduleConfig -> Schedule | None
    from audiolvm.losses.bounds import SCHEDULES, make_schedule

    if cfg.kind == "none":
        return None
    if cfg.kind not in SCHEDULES:
        raise ConfigError(f"loss.{name}.kind={cfg.kind!r} is unknown; use none or one of {sorted(SCHEDULES)}")
    fields = {f.name for f in dataclasses.fields(SCHEDULES[cfg.kind])}
    return make_schedule(cfg.kind, **{k: v for k, v in dataclasses.asdict(cfg).items() if k in fields})


def build_image_objective(cfg):  # noqa: ANN001, ANN201 - ImageExperimentConfig -> step function
    """``VAEObjective`` (vae, cvae), ``M2Objective`` (m2) or ``ImageReconstructionObjective`` (vqvae)."""
    from audiolvm.models.image_vqvae import ImageReconstructionObjective
    from audiolvm.models.m2 import M2Objective
    from audiolvm.models.vae_objective import VAEObjective

    loss, kind = cfg.loss, cfg.model.kind
    if kind == "vqvae":
        return ImageReconstructionObjective(loss.weights, loss.recon)
    if kind == "m2":
        return M2Objective(loss.alpha)
    if kind not in IMAGE_KINDS:
        raise ConfigError(f"model.kind={kind!r} is unknown; use one of {IMAGE_KINDS}")
    try:
        return VAEObjective(loss.beta, loss.estimator, loss.analytic_kl, loss.free_bits,
                            _image_schedule(loss.warmup, "warmup"), _image_schedule(loss.capacity, "capacity"),
                            conditional=kind == "cvae")
    except ValueError as exc:
        raise ConfigError(f"loss: {exc}") from exc


def load_image_model(path: str | Path):  # noqa: ANN201 - (model, ImageExperimentConfig)
    """Rebuild a trained image model from its run folder (config.json + model.safetensors), eval mode."""
    from audiolvm.config import ImageExperimentConfig

    return load_run(path, ImageExperimentConfig, lambda cfg: build_image_model(cfg.model), "image model")


# ---- priors over image code maps
class ImageCodeData(NamedTuple):
    """What :func:`build_image_code_data` returns: the resolved prior config, the VQ-VAE (eval mode) and its
    config, and per split the images and their code maps."""

    cfg: Any  # ImagePriorExperimentConfig
    vqvae: nn.Module
    vqvae_cfg: Any  # ImageExperimentConfig
    images: dict[str, Any]  # split -> image dataset
    codes: dict[str, Any]  # split -> CodeMapDataset


def build_image_code_data(cfg, splits: tuple[str, ...] = ("train", "test")) -> ImageCodeData:  # noqa: ANN001
    """Load the VQ-VAE run ``cfg.vqvae`` and encode its own ``splits`` to code maps
    (:class:`~audiolvm.data.codes.CodeMapDataset`). When the training split is encoded, the prior's codebook
    size and class names are filled from it (unconditional when the images carry no labels or
    ``prior.use_labels`` is off); otherwise ``cfg`` must already be resolved (a saved run's config).
    """
    from torch.utils.data import DataLoader

    from audiolvm.data.codes import CodeMapDataset
    from audiolvm.models.image_vqvae import encode_images

    if cfg.prior.kind != "pixelcnn2d":
        raise ConfigError(f"prior.kind={cfg.prior.kind!r}: image code maps are modelled by 'pixelcnn2d'")
    vqvae, vq_cfg = load_image_model(cfg.vqvae)
    if vq_cfg.model.kind != "vqvae":
        raise ConfigError(f"vqvae={cfg.vqvae}: that run is a {vq_cfg.model.kind!r} model; an image prior needs an "
                          "image VQ-VAE run ('audiolvm train-image configs/image/vqvae_digits.yaml')")
    images = dict(zip(("train", "test"), build_image_datasets(vq_cfg), strict=True))
    codes = {split: CodeMapDataset(*encode_images(vqvae, DataLoader(images[split], batch_size=256, shuffle=False)))
             for split in splits}
    if "train" in codes:
        labels = codes["train"].labels
        use = cfg.prior.use_labels and bool((labels >= 0).any())
        names = [str(c) for c in range(int(labels.max()) + 1)] if use else []
        cfg = dataclasses.replace(cfg, prior=dataclasses.replace(cfg.prior, num_codes=vq_cfg.model.vq.num_codes,
                                                                 labels=names))
    return ImageCodeData(cfg, vqvae, vq_cfg, {split: images[split] for split in splits}, codes)


def load_image_prior(path: str | Path):  # noqa: ANN201 - (GatedPixelCNN2d, ImagePriorExperimentConfig)
    """Rebuild a trained image prior from its run folder (config.json + model.safetensors), eval mode."""
    from audiolvm.config import ImagePriorExperimentConfig

    return load_run(path, ImagePriorExperimentConfig, lambda cfg: build_prior(cfg.prior), "image prior")


def load_any_run(path: str | Path) -> tuple[str, nn.Module, Any]:
    """``(run kind, module in eval mode, config)`` of any run folder, loaded by the loader of its kind
    (:func:`run_kind`)."""
    kind = run_kind(path)
    loaders = {"audio": load_model, "prior": load_prior, "classifier": load_classifier, "image": load_image_model,
               "image_prior": load_image_prior}
    module, cfg = loaders[kind](path)
    return kind, module, cfg
