"""Multi-level audio autoencoders (Jukebox / VQ-VAE-2): L levels at growing hop lengths.

Level 0 is the finest (smallest hop). Each level is an :class:`Autoencoder` on the waveform with
its own encoder, bottleneck and decoder. Two modes:

* ``independent`` (Jukebox): each level reconstructs the waveform from its own codes alone.
* ``conditioned`` (VQ-VAE-2): level ``l``'s decoder also receives the quantized output of level
  ``l + 1``, upsampled to level ``l``'s frame rate by transposed convolutions and added to its input.

A single level (``L = 1``) is the plain audio VQ-VAE. The forward pass loops over the (few) levels,
never over time steps.

Speaker-conditioned decoding (voice conversion): with a :class:`SpeakerConditioner` the decoders of
``speaker_levels`` take a global speaker vector in every stage. Every method that decodes then takes
``speaker``: training-speaker ids ``LongTensor[B]``, reference audio ``Tensor[B x 1 x T]`` (with a speaker
encoder) or vectors ``Tensor[B x dim]``. :meth:`convert` is reconstruction with another speaker.

Pitch-aware decoding (speech): with a :class:`PitchConditioner` the decoders of ``pitch_levels`` also take
F0 and voicing (:class:`Pitch`), as :meth:`PitchConditioner.excitation` (an NSF excitation for a conv decoder, or
F0 and voicing at the sample rate for a harmonic-plus-noise decoder) and a log-F0 feature added to their input.
Every decoding method takes ``pitch=``; when it is not given, F0 is extracted from the input (:meth:`reconstruct`,
:meth:`convert`) or predicted from the codes (:meth:`decode`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast, overload

import torch
from torch import nn

from audiolvm.bottleneck.base import BottleneckResult
from audiolvm.bottleneck.jitter import time_jitter
from audiolvm.core.errors import UnsupportedError, UsageError
from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.models.pitch import Pitch, PitchConditioner, map_pitch, voiced_log_stats
from audiolvm.models.speaker import SpeakerAdversary, SpeakerConditioner
from audiolvm.nn.conv1d import Upsample1d, halving_strides
from audiolvm.nn.mode import eval_mode

MODES = ("independent", "conditioned")
PITCH_MODES = ("map", "source", "predicted")


@dataclass
class MultiLevelOutput:
    """``levels[l]``: level ``l``'s reconstruction ``Tensor[B x 1 x T]`` and bottleneck result;
    ``losses``: model-wide unweighted loss terms (e.g. ``speaker/encoder``); ``metrics``: model-wide values that
    are logged, not optimised (e.g. ``speaker/adversary_acc``)."""

    levels: list[AutoencoderOutput]
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def upsampler(channels: int, factor: int) -> nn.Module:
    """Transposed-conv stack that multiplies the frame rate by ``factor`` (stride-2 steps when possible)."""
    layers: list[nn.Module] = [nn.Conv1d(channels, channels, 3, padding=1)]
    for s in halving_strides(factor):
        layers += [nn.ReLU(), Upsample1d(channels, channels, s)]
    return nn.Sequential(*layers)


class MultiLevelAutoencoder(nn.Module):
    """L autoencoders over one waveform, finest first.

    Args:
        levels: one :class:`Autoencoder` per level, with strictly increasing ``hop``; in
            ``conditioned`` mode each hop must divide the next.
        mode: ``"independent"`` or ``"conditioned"``.
        latent_dim: the channel width of the bottleneck outputs (needed for conditioning).
        speaker: the speaker table (and encoder) when some decoders are speaker-conditioned.
        speaker_levels: the levels whose decoders take the speaker vector (built with ``speaker_dim``).
        pitch: the pitch path when some decoders take F0 (built with ``source_dim=2``).
        pitch_levels: the levels whose decoders take F0; the predictor reads the finest of them.
        jitter: in training, each quantized frame a decoder reads is replaced by a neighbour with this probability
            (:func:`time_jitter`, Chorowski et al. 2019); the bottleneck's own outputs and losses are unchanged.
        adversary: a :class:`SpeakerAdversary` reading the quantized frames of the finest speaker level through a
            gradient reversal, whenever training-speaker ids are given (the term ``speaker/adversary``).
    """

    levels: Sequence[Autoencoder]  # an nn.ModuleList at run time, typed by its items

    def __init__(self, levels: Sequence[Autoencoder], mode: str = "independent", latent_dim: int = 64,
                 speaker: SpeakerConditioner | None = None, speaker_levels: Sequence[int] = (),
                 pitch: PitchConditioner | None = None, pitch_levels: Sequence[int] = (), jitter: float = 0.0,
                 adversary: SpeakerAdversary | None = None) -> None:
        super().__init__()
        self.jitter = jitter  # time_jitter checks the range when it is used; builders check the config
        if adversary is not None and speaker is None:
            raise UsageError("a speaker adversary needs a speaker-conditioned model (the speakers' ids it predicts)")
        self.adversary = adversary
        for what, module, chosen in (("speaker", speaker, speaker_levels), ("pitch", pitch, pitch_levels)):
            if (module is None) != (not chosen):
                raise UsageError(f"give both a {what} conditioner and the {what}-conditioned levels, or neither")
            bad = [i for i in chosen if not 0 <= i < len(levels)]
            if bad:
                raise UsageError(f"{what}_levels {list(chosen)}: levels must be in [0, {len(levels)})")
        self.speaker, self.speaker_levels = speaker, sorted(set(speaker_levels))
        self.pitch, self.pitch_levels = pitch, sorted(set(pitch_levels))
        if mode not in MODES:
            raise UsageError(f"mode={mode!r} is unknown; use one of {MODES}")
        hops = [lv.hop for lv in levels]
        if not hops or any(a >= b for a, b in zip(hops, hops[1:], strict=False)):
            raise UsageError(f"level hops must be non-empty and strictly increasing, got {hops}")
        self.levels, self.mode = cast("Sequence[Autoencoder]", nn.ModuleList(levels)), mode
        self.conditioners = nn.ModuleList()
        if mode == "conditioned":
            for lower, upper in zip(hops, hops[1:], strict=False):
                if upper % lower:
                    raise UsageError(f"conditioned mode needs each hop to divide the next, got {hops}")
                self.conditioners.append(upsampler(latent_dim, upper // lower))

    @property
    def hops(self) -> list[int]:
        return [lv.hop for lv in self.levels]

    @property
    def hop(self) -> int:
        """The finest hop (level 0)."""
        return self.levels[0].hop

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def discrete(self) -> bool:
        return all(lv.bottleneck.discrete for lv in self.levels)

    def _condition(self, level: int, z: torch.Tensor, z_upper: torch.Tensor | None) -> torch.Tensor:
        """Add level ``level + 1``'s upsampled quantized output to level ``level``'s ``z``."""
        if self.mode != "conditioned" or z_upper is None:
            return z
        up = self.conditioners[level](z_upper)  # (B, D, N_upper * ratio) >= (B, D, N)
        return z + up[..., : z.shape[-1]]

    def _encode_levels(self, x: torch.Tensor, levels: Sequence[int]) -> dict[int, BottleneckResult]:
        """Bottleneck results of the given levels; ``z_l : Tensor[B x D x ceil(T / hop_l)]``."""
        return {i: self.levels[i].bottleneck(self.levels[i].encoder(self.levels[i].pad(x))) for i in levels}

    @property
    def speaker_names(self) -> list[str]:
        """The training speakers the decoder knows by id ([] if it is not speaker-conditioned)."""
        return [] if self.speaker is None else list(self.speaker.names)

    def add_speaker(self, name: str, vector: torch.Tensor, f0_stats: Sequence[float] | None = None) -> int:
        """Enrol a new voice: ``vector : Tensor[dim]`` becomes speaker ``name``'s table row (its id is returned) and,
        with a pitch path, ``f0_stats`` its ln-F0 ``[mean, std]`` (default: the corpus's). No other weight changes."""
        if self.speaker is None:
            raise UsageError("this model is not speaker-conditioned: there is no speaker table to add a voice to")
        new_id = self.speaker.add_speaker(name, vector)
        if self.pitch is not None and self.pitch.names:
            self.pitch.add_speaker(name, self.pitch.global_stats.tolist() if f0_stats is None else f0_stats)
        if self.adversary is not None:
            self.adversary.add_speaker()
        return new_id

    def speaker_vector(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """``Tensor[B x dim]`` for ids, reference audio or vectors (None for an unconditioned model)."""
        if self.speaker is None:
            return None
        if speaker is None:
            raise UsageError(f"this model's decoders at levels {self.speaker_levels} are speaker-conditioned: "
                             f"pass speaker= (ids into {self.speaker_names}, reference audio, or vectors)")
        return self.speaker(speaker)

    def decode_latents(self, level: int, z: torch.Tensor, upper: torch.Tensor | None,
                       c: torch.Tensor | None, pitch: Pitch | None = None) -> torch.Tensor:
        """Level ``level``'s decoder output for quantized ``z : Tensor[B x D x N]`` (+ the level above's, in
        conditioned mode), speaker vector ``c : Tensor[B x dim]`` and, for a pitch level, F0 ``pitch``; no state
        changes (used by every decoding method, and by speaker enrolment to fit a vector with fixed codes)."""
        h = self._condition(level, z, upper)
        dec = self.levels[level].decoder
        c = c if level in self.speaker_levels else None
        if level not in self.pitch_levels:
            return dec(h, c) if c is not None else dec(h)
        if pitch is None:
            raise UsageError(f"level {level}'s decoder takes F0: pass pitch= (see MultiLevelAutoencoder.extract_pitch)")
        assert self.pitch is not None  # pitch_levels is non-empty only with a pitch path (checked in __init__)
        h = h + self.pitch.frame_features(pitch, h.shape[-1])  # (B, D, N)
        return dec(h, c, self.pitch.excitation(pitch, h.shape[-1] * self.levels[level].hop))

    def _decode_level(self, i: int, results: dict[int, BottleneckResult], length: int,
                      c: torch.Tensor | None = None, pitch: Pitch | None = None) -> torch.Tensor:
        """Level ``i``'s waveform ``Tensor[B x 1 x length]`` (conditioned on level ``i + 1`` if present)."""
        upper = results[i + 1].z if i + 1 in results else None
        z = time_jitter(results[i].z, self.jitter) if self.training and self.jitter else results[i].z
        return self.decode_latents(i, z, upper, c, pitch)[..., :length]

    def _needed_levels(self, level: int) -> list[int]:
        """The levels whose codes decoding ``level`` needs: itself and, in conditioned mode, the one above."""
        return [level] + ([level + 1] if self.mode == "conditioned" and level + 1 < self.num_levels else [])

    def extract_pitch(self, x: torch.Tensor) -> Pitch | None:
        """F0 of ``x : Tensor[B x 1 x T]`` with the model's own extractor settings (None without a pitch path)."""
        return None if self.pitch is None else self.pitch.extract(x)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor | None = None,
                pitch: Pitch | None = None) -> MultiLevelOutput:
        """``x : Tensor[B x 1 x T]`` -> every level's reconstruction and bottleneck result. ``speaker`` is
        ignored by an unconditioned model; in training, with a speaker encoder, ids are mixed with the
        encoder's vectors of ``x`` (see :meth:`SpeakerConditioner.training_vectors`). ``pitch`` (F0 of ``x``;
        extracted when not given) is used by pitch levels; in training it also teaches the F0 predictor."""
        losses: dict[str, torch.Tensor] = {}
        c: torch.Tensor | None
        if self.speaker is not None and self.training and speaker is not None and not speaker.is_floating_point():
            c, losses = self.speaker.training_vectors(speaker, x)
        else:
            c = self.speaker_vector(speaker)
        given = pitch is not None
        if self.pitch is not None and pitch is None:
            pitch = self.extract_pitch(x)
        results = self._encode_levels(x, range(self.num_levels))
        levels = [AutoencoderOutput(recon=self._decode_level(i, results, x.shape[-1], c, pitch),
                                    bottleneck=results[i]) for i in range(self.num_levels)]
        metrics: dict[str, torch.Tensor] = {}
        if self.adversary is not None and speaker is not None and not speaker.is_floating_point():
            level, book = self.speaker_levels[0], None
            if self.adversary.histogram:  # the level's codes as vectors, through the Bottleneck interface
                bottleneck = self.levels[level].bottleneck
                book = bottleneck.embed(torch.arange(bottleneck.num_codes, device=x.device)[None])[0].T  # (K, D)
            losses["speaker/adversary"], metrics["speaker/adversary_acc"] = self.adversary(
                results[level].z, speaker, book)
        if self.pitch is not None and (self.training or given):  # the F0 predictor's terms (valid: held-out error)
            stats = self.pitch.speaker_stats(speaker, x.shape[0])
            assert pitch is not None  # given, or extracted above (there is a pitch path)
            losses.update(self.pitch.predictor_losses(results[self.pitch_levels[0]].z, c, pitch, stats))
        return MultiLevelOutput(levels=levels, losses=losses, metrics=metrics)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``Tensor[B x 1 x T]`` -> codes per level, ``LongTensor[B x ceil(T / hop_l)]`` (eval mode)."""
        if not self.discrete:
            raise UnsupportedError("this model has a continuous bottleneck and produces no codes")
        return [lv.encode(x) for lv in self.levels]

    @torch.no_grad()
    def level_features(self, x: torch.Tensor, level: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Eval-mode ``(pre, z, codes)`` of one level for ``x : Tensor[B x 1 x T]``: the encoder output
        before the bottleneck and the quantized vectors, both ``Tensor[B x D x N_l]``, and the codes
        ``LongTensor[B x N_l]`` (None for a continuous bottleneck). ``N_l = ceil(T / hop_l)``."""
        lv = self.levels[level]
        with eval_mode(self):
            pre = lv.encoder(lv.pad(x))
            res = lv.bottleneck(pre)
            return pre, res.z, res.codes

    @torch.no_grad()
    def decode(self, codes: Sequence[torch.Tensor | None], level: int = 0, length: int | None = None,
               speaker: torch.Tensor | None = None, pitch: Pitch | None = None) -> torch.Tensor:
        """Waveform ``Tensor[B x 1 x N_l * hop_l]`` from level ``level``'s codes (and, in conditioned
        mode, level ``level + 1``'s codes too); cropped to ``length`` if given. ``speaker`` as in
        :meth:`forward` (needed when level ``level``'s decoder is speaker-conditioned). A pitch level without
        ``pitch`` takes the F0 that the predictor reads from the codes, in the speaker's range."""
        lv = self.levels[level]
        own_codes = codes[level]
        if own_codes is None:
            raise UsageError(f"decoding level {level} needs its codes: codes[{level}] is None")
        z = lv.bottleneck.embed(own_codes)  # (B, D, N_l)
        upper = None
        if self.mode == "conditioned" and level + 1 < self.num_levels:
            upper_codes = codes[level + 1]
            if upper_codes is None:
                raise UsageError(f"conditioned mode: decoding level {level} needs level {level + 1}'s codes too")
            upper = self.levels[level + 1].bottleneck.embed(upper_codes)
        c = self.speaker_vector(speaker) if level in self.speaker_levels else None
        if level in self.pitch_levels and pitch is None:
            pitch = self.predict_pitch(codes, speaker, z.shape[-1] * lv.hop)
        out = self.decode_latents(level, z, upper, c, pitch)
        return out if length is None else out[..., :length]

    @torch.no_grad()
    def predict_pitch(self, codes: Sequence[torch.Tensor | None], speaker: torch.Tensor | None,
                      length: int) -> Pitch:
        """F0 of ``length`` samples predicted from the codes of the predictor's level (the finest pitch level),
        in the range of ``speaker`` (ids or a reference clip; otherwise the training corpus's range)."""
        if self.pitch is None:
            raise UsageError("this model has no pitch path (model.pitch.levels is empty)")
        pl = self.pitch_levels[0]
        pl_codes = codes[pl]
        if pl_codes is None:
            raise UsageError(f"predicting F0 needs level {pl}'s codes (the F0 predictor reads that level)")
        z = self.levels[pl].bottleneck.embed(pl_codes)  # (B, D, N)
        c = self.speaker_vector(speaker) if self.speaker is not None else None
        stats = self.pitch.speaker_stats(speaker, z.shape[0])
        return self.pitch.predict(z, c, stats, length // self.pitch.settings.hop + 1)

    @overload
    def reconstruct(self, x: torch.Tensor, level: None = None, speaker: torch.Tensor | None = None,
                    pitch: Pitch | None = None) -> list[torch.Tensor]: ...

    @overload
    def reconstruct(self, x: torch.Tensor, level: int, speaker: torch.Tensor | None = None,
                    pitch: Pitch | None = None) -> torch.Tensor: ...

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, level: int | None = None, speaker: torch.Tensor | None = None,
                    pitch: Pitch | None = None) -> list[torch.Tensor] | torch.Tensor:
        """Eval-mode reconstruction with no state updates: every level's ``[Tensor[B x 1 x T]]``, or
        only ``level``'s tensor (running only the encoders and the decoder that level needs).
        ``speaker`` and ``pitch`` as in :meth:`forward`."""
        with eval_mode(self):
            if level is None:
                return [out.recon for out in self(x, speaker, pitch).levels]
            needed = self._needed_levels(level)
            c = self.speaker_vector(speaker) if level in self.speaker_levels else None
            if level in self.pitch_levels and pitch is None:
                pitch = self.extract_pitch(x)
            return self._decode_level(level, self._encode_levels(x, needed), x.shape[-1], c, pitch)

    @torch.no_grad()
    def convert(self, x: torch.Tensor, speaker: torch.Tensor, level: int = 0, pitch: str = "map",
                shift_semitones: float = 0.0) -> torch.Tensor:
        """Voice conversion: encode ``x : Tensor[B x 1 x T]`` and decode level ``level`` with the target
        ``speaker`` (ids, reference audio or vectors) -> ``Tensor[B x 1 x T]``.

        On a pitch level, ``pitch`` chooses the F0: ``map`` (default) moves the source's contour from its own
        ln-F0 mean and std to the target speaker's (from the table, or from a reference clip); ``source``
        keeps it; ``predicted`` takes the F0 predictor's contour in the target's range. ``shift_semitones``
        is added to ``map`` and ``source``."""
        if level not in self.speaker_levels:
            raise UsageError(f"level {level}'s decoder is not speaker-conditioned (conditioned levels: "
                             f"{self.speaker_levels}); set model.speaker.levels in the config and retrain")
        if pitch not in PITCH_MODES:
            raise UsageError(f"pitch={pitch!r} is unknown; use one of {PITCH_MODES}")
        if level not in self.pitch_levels:
            return self.reconstruct(x, level, speaker)
        if pitch == "predicted":
            codes: list[torch.Tensor | None] = [None] * self.num_levels
            for i in {self.pitch_levels[0], *self._needed_levels(level)}:
                codes[i] = self.levels[i].encode(x)
            return self.decode(codes, level, x.shape[-1], speaker)
        assert self.pitch is not None  # level is a pitch level, so there is a pitch path (checked in __init__)
        src = self.pitch.extract(x)  # what self.extract_pitch(x) returns when there is a pitch path
        target = self.pitch.speaker_stats(speaker, x.shape[0]) if pitch == "map" else None
        source = voiced_log_stats(src, self.pitch.global_stats)
        keep = target is None and not shift_semitones
        mapped = src if keep else map_pitch(src, source, source if target is None else target, shift_semitones)
        return self.reconstruct(x, level, speaker, mapped)
