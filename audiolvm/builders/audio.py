"""The audio family: config names to the VQ-VAE (levels, content encoder, pitch path, speaker table), its
objective and discriminators, enrolment of a new voice, the speaker classifier, and loading their runs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audiolvm.bottleneck import Bottleneck, IdentityBottleneck
from audiolvm.builders.runs import load_run, resolve_checkpoint
from audiolvm.builders.vq import build_vq
from audiolvm.config import (
    AdversarialConfig,
    ClassifierConfig,
    ClassifierExperimentConfig,
    ConfigError,
    ExperimentConfig,
    ModelConfig,
    config_from_dict,
)
from audiolvm.core.errors import UsageError
from audiolvm.core.files import read_json
from audiolvm.core.pitch import PITCH_METHODS, PitchSettings
from audiolvm.engine.checkpoint import REEXPORT_FIX, load_strict, load_weights
from audiolvm.losses import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audiolvm.losses.balancer import Balancer
from audiolvm.models import AudioReconstructionObjective, MultiLevelAutoencoder
from audiolvm.models.adversarial import ADV_TERMS, AdversarialObjective, Discriminators, balancer_keys
from audiolvm.models.audio_vqvae import audio_autoencoder
from audiolvm.models.classifier import SpeakerClassifier
from audiolvm.models.enroll import Enrolment, enroll_speaker
from audiolvm.models.pitch import SYNTHS, PitchConditioner
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
    """Level ``level``'s bottleneck: the VQ of ``model.vq`` (:func:`build_vq`) or none (``identity``)."""
    if cfg.bottleneck == "vq":
        return build_vq(cfg.vq, level, cfg.num_levels, where=" (model.strides)")
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
    if spk.adversary_histogram and (spk.adversary_pool or not spk.adversary or cfg.bottleneck != "vq"):
        raise ConfigError("model.speaker.adversary_histogram: needs model.speaker.adversary > 0, a VQ bottleneck "
                          "(model.bottleneck: vq) and not model.speaker.adversary_pool (the adversary reads one or "
                          "the other)")
    pitch_levels = check_pitch_config(cfg)
    levels = []
    strides: list[int] = []
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
                                     n_mels=spk.n_mels, encoder_mix=spk.encoder_mix,
                                     encoder_kind=spk.encoder_kind)
        if spk.adversary:
            adversary = SpeakerAdversary(cfg.vq.dim, len(spk.names), spk.adversary_width, spk.adversary,
                                         pool=spk.adversary_pool,
                                         num_codes=cfg.per_level("vq.num_codes")[spk.levels[0]]
                                         if spk.adversary_histogram else 0)
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


def load_model(path: str | Path) -> tuple[MultiLevelAutoencoder, ExperimentConfig]:
    """Rebuild a trained audio VQ-VAE from its saved config and safetensors weights (eval mode)."""
    return load_run(path, ExperimentConfig, lambda cfg: build_model(cfg.model, cfg.data.sample_rate), "audio model")


def load_speaker_model(path: str | Path, level: int = 0) -> tuple[MultiLevelAutoencoder, ExperimentConfig]:
    """:func:`load_model` for a command that needs a speaker-conditioned decoder at ``level`` (convert, enroll)."""
    model, cfg = load_model(path)
    if model.speaker is None:
        raise UsageError(f"{path}: this model's decoder is not speaker-conditioned (model.speaker.levels is empty); "
                         "train one with model.speaker.levels set (e.g. configs/demo/speech_vqvae.yaml)")
    if level not in model.speaker_levels:
        raise UsageError(f"--level {level}: speaker-conditioned levels of this model are {model.speaker_levels}")
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


# ---- speaker classifier
def build_classifier(cfg: ClassifierConfig, sample_rate: int) -> SpeakerClassifier:
    """The speaker classifier of a config whose ``speakers`` were filled from the training set."""
    if len(cfg.speakers) < 2:
        raise ConfigError(f"model.speakers={cfg.speakers}: a speaker classifier needs at least two speakers; "
                          "it is filled from the training set by 'audiolvm train-classifier'")
    return SpeakerClassifier(len(cfg.speakers), sample_rate, n_mels=cfg.n_mels, channels=cfg.channels,
                             embed_dim=cfg.embed_dim, dropout=cfg.dropout, speakers=cfg.speakers)


def load_classifier(path: str | Path) -> tuple[SpeakerClassifier, ClassifierExperimentConfig]:
    """Rebuild a trained speaker classifier from its run folder (config.json + model.safetensors), eval mode."""
    return load_run(path, ClassifierExperimentConfig, lambda cfg: build_classifier(cfg.model, cfg.data.sample_rate),
                    "speaker classifier")
