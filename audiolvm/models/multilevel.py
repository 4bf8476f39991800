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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from audiolvm.bottleneck.base import BottleneckResult
from audiolvm.models.autoencoder import Autoencoder, AutoencoderOutput
from audiolvm.models.speaker import SpeakerConditioner
from audiolvm.nn.conv1d import Upsample1d

MODES = ("independent", "conditioned")


@dataclass
class MultiLevelOutput:
    """``levels[l]``: level ``l``'s reconstruction ``Tensor[B x 1 x T]`` and bottleneck result;
    ``losses``: model-wide unweighted loss terms (e.g. ``speaker/encoder``)."""

    levels: list[AutoencoderOutput]
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


def upsampler(channels: int, factor: int) -> nn.Module:
    """Transposed-conv stack that multiplies the frame rate by ``factor`` (stride-2 steps when possible)."""
    steps: list[int] = []
    while factor > 1:
        step = 2 if factor % 2 == 0 else factor
        steps.append(step)
        factor //= step
    layers: list[nn.Module] = [nn.Conv1d(channels, channels, 3, padding=1)]
    for s in steps:
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
    """

    def __init__(self, levels: Sequence[Autoencoder], mode: str = "independent", latent_dim: int = 64,
                 speaker: SpeakerConditioner | None = None, speaker_levels: Sequence[int] = ()) -> None:
        super().__init__()
        if (speaker is None) != (not speaker_levels):
            raise ValueError("give both a SpeakerConditioner and the speaker-conditioned levels, or neither")
        bad = [i for i in speaker_levels if not 0 <= i < len(levels)]
        if bad:
            raise ValueError(f"speaker_levels {list(speaker_levels)}: levels must be in [0, {len(levels)})")
        self.speaker, self.speaker_levels = speaker, sorted(set(speaker_levels))
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is unknown; use one of {MODES}")
        hops = [lv.hop for lv in levels]
        if not hops or any(a >= b for a, b in zip(hops, hops[1:], strict=False)):
            raise ValueError(f"level hops must be non-empty and strictly increasing, got {hops}")
        self.levels, self.mode = nn.ModuleList(levels), mode
        self.conditioners = nn.ModuleList()
        if mode == "conditioned":
            for lower, upper in zip(hops, hops[1:], strict=False):
                if upper % lower:
                    raise ValueError(f"conditioned mode needs each hop to divide the next, got {hops}")
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

    def speaker_vector(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """``Tensor[B x dim]`` for ids, reference audio or vectors (None for an unconditioned model)."""
        if self.speaker is None:
            return None
        if speaker is None:
            raise ValueError(f"this model's decoders at levels {self.speaker_levels} are speaker-conditioned: "
                             f"pass speaker= (ids into {self.speaker_names}, reference audio, or vectors)")
        return self.speaker(speaker)

    def _decoder_input(self, level: int, z: torch.Tensor, upper: torch.Tensor | None,
                       c: torch.Tensor | None) -> torch.Tensor:
        """Level ``level``'s decoder output for quantized ``z`` (+ the level above) and speaker vector ``c``."""
        h = self._condition(level, z, upper)
        dec = self.levels[level].decoder
        return dec(h, c) if level in self.speaker_levels else dec(h)

    def _decode_level(self, i: int, results: dict[int, BottleneckResult], length: int,
                      c: torch.Tensor | None = None) -> torch.Tensor:
        """Level ``i``'s waveform ``Tensor[B x 1 x length]`` (conditioned on level ``i + 1`` if present)."""
        upper = results[i + 1].z if i + 1 in results else None
        return self._decoder_input(i, results[i].z, upper, c)[..., :length]

    def forward(self, x: torch.Tensor, speaker: torch.Tensor | None = None) -> MultiLevelOutput:
        """``x : Tensor[B x 1 x T]`` -> every level's reconstruction and bottleneck result. ``speaker`` is
        ignored by an unconditioned model; in training, with a speaker encoder, ids are mixed with the
        encoder's vectors of ``x`` (see :meth:`SpeakerConditioner.training_vectors`)."""
        losses: dict[str, torch.Tensor] = {}
        if self.speaker is not None and self.training and speaker is not None and not speaker.is_floating_point():
            c, losses = self.speaker.training_vectors(speaker, x)
        else:
            c = self.speaker_vector(speaker)
        results = self._encode_levels(x, range(self.num_levels))
        levels = [AutoencoderOutput(recon=self._decode_level(i, results, x.shape[-1], c), bottleneck=results[i])
                  for i in range(self.num_levels)]
        return MultiLevelOutput(levels=levels, losses=losses)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``Tensor[B x 1 x T]`` -> codes per level, ``LongTensor[B x ceil(T / hop_l)]`` (eval mode)."""
        if not self.discrete:
            raise TypeError("this model has a continuous bottleneck and produces no codes")
        return [lv.encode(x) for lv in self.levels]

    @torch.no_grad()
    def level_features(self, x: torch.Tensor, level: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Eval-mode ``(pre, z, codes)`` of one level for ``x : Tensor[B x 1 x T]``: the encoder output
        before the bottleneck and the quantized vectors, both ``Tensor[B x D x N_l]``, and the codes
        ``LongTensor[B x N_l]`` (None for a continuous bottleneck). ``N_l = ceil(T / hop_l)``."""
        lv, was_training = self.levels[level], self.training
        self.eval()
        try:
            pre = lv.encoder(lv.pad(x))
            res = lv.bottleneck(pre)
            return pre, res.z, res.codes
        finally:
            self.train(was_training)

    @torch.no_grad()
    def decode(self, codes: Sequence[torch.Tensor | None], level: int = 0, length: int | None = None,
               speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Waveform ``Tensor[B x 1 x N_l * hop_l]`` from level ``level``'s codes (and, in conditioned
        mode, level ``level + 1``'s codes too); cropped to ``length`` if given. ``speaker`` as in
        :meth:`forward` (needed when level ``level``'s decoder is speaker-conditioned)."""
        lv = self.levels[level]
        z = lv.bottleneck.embed(codes[level])  # (B, D, N_l)
        upper = None
        if self.mode == "conditioned" and level + 1 < self.num_levels:
            if codes[level + 1] is None:
                raise ValueError(f"conditioned mode: decoding level {level} needs level {level + 1}'s codes too")
            upper = self.levels[level + 1].bottleneck.embed(codes[level + 1])
        c = self.speaker_vector(speaker) if level in self.speaker_levels else None
        out = self._decoder_input(level, z, upper, c)
        return out if length is None else out[..., :length]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, level: int | None = None,
                    speaker: torch.Tensor | None = None) -> list[torch.Tensor] | torch.Tensor:
        """Eval-mode reconstruction with no state updates: every level's ``[Tensor[B x 1 x T]]``, or
        only ``level``'s tensor (running only the encoders and the decoder that level needs).
        ``speaker`` as in :meth:`forward`."""
        was_training = self.training
        self.eval()
        try:
            if level is None:
                return [out.recon for out in self(x, speaker).levels]
            needed = [level] + ([level + 1] if self.mode == "conditioned" and level + 1 < self.num_levels else [])
            c = self.speaker_vector(speaker) if level in self.speaker_levels else None
            return self._decode_level(level, self._encode_levels(x, needed), x.shape[-1], c)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def convert(self, x: torch.Tensor, speaker: torch.Tensor, level: int = 0) -> torch.Tensor:
        """Voice conversion: encode ``x : Tensor[B x 1 x T]`` and decode level ``level`` with the target
        ``speaker`` (ids, reference audio or vectors) -> ``Tensor[B x 1 x T]``."""
        if level not in self.speaker_levels:
            raise ValueError(f"level {level}'s decoder is not speaker-conditioned (conditioned levels: "
                             f"{self.speaker_levels}); set model.speaker.levels in the config and retrain")
        return self.reconstruct(x, level, speaker)
