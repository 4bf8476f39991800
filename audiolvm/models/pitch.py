"""The pitch path of a speech decoder: F0 in, as an explicit excitation; F0 out, predicted from the codes.

:class:`PitchConditioner` holds everything a pitch-aware :class:`MultiLevelAutoencoder` needs besides its
levels:

* the extractor settings (:class:`audiolvm.core.pitch.PitchSettings`), so a model extracts F0 from any
  input it reconstructs or converts exactly as its training data was extracted;
* per-speaker ``[mean, std]`` of ln F0 over voiced frames (from the training corpus, saved in
  ``config.json``), used to map a source contour into a target voice's range;
* what the pitch decoders take as their ``source``: the NSF excitation (:class:`HarmonicSource`) for a conv
  decoder (``synth="nsf"``), or F0 and voicing at the sample rate for a :class:`HarmonicNoiseDecoder`
  (``synth="hpn"``); and a code-rate projection of log-F0 and voicing that is added to the decoder's input;
* :class:`PitchPredictor`: F0 and voicing from the (detached) quantized codes and the speaker vector, for
  sampling from a prior (no input F0) and ``convert --pitch predicted``.

F0 travels as :class:`Pitch`: ``f0 : Tensor[B x N]`` in Hz, continuous (interpolated through unvoiced
stretches, so a contour can be mapped and upsampled without jumps to 0), and ``voiced : Tensor[B x N]`` in
{0, 1}; frame ``n`` sits at sample ``n * hop``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core import pitch as pitch_lib
from audiolvm.core.errors import UsageError
from audiolvm.core.pitch import ALL_SPEAKERS as GLOBAL
from audiolvm.core.pitch import PitchSettings, continuous_f0
from audiolvm.nn.conv1d import FiLM1d, Upsample1d
from audiolvm.nn.source import HarmonicSource, fit_frames, frames_to_samples, log_f0_feature

SYNTHS = ("nsf", "hpn")  # NSF excitation into the conv decoder | harmonic-plus-noise synthesizer (DDSP)


class Pitch(NamedTuple):
    """``f0 : Tensor[B x N]`` (Hz, continuous) and ``voiced : Tensor[B x N]`` (float 0 / 1)."""

    f0: torch.Tensor
    voiced: torch.Tensor


def pitch_from_arrays(f0: Sequence[np.ndarray], voiced: Sequence[np.ndarray]) -> Pitch:
    """Stack per-item extractor outputs of equal length into a :class:`Pitch` (continuous F0)."""
    f = np.stack([continuous_f0(a, v) for a, v in zip(f0, voiced, strict=True)])  # (B, N)
    v = np.stack([np.asarray(x, dtype=np.float32) for x in voiced])
    return Pitch(torch.from_numpy(f), torch.from_numpy(v))


def voiced_log_stats(pitch: Pitch, fallback: torch.Tensor, min_voiced: int = 5, min_std: float = 0.02) -> torch.Tensor:
    """Per item ``[mean, std]`` of ln F0 over its voiced frames, ``Tensor[B x 2]``; items with fewer than
    ``min_voiced`` voiced frames take ``fallback : Tensor[2]``. The std is floored at ``min_std`` (about 35
    cents), so mapping a nearly flat contour cannot blow its wobble up."""
    v = pitch.voiced > 0.5  # (B, N)
    lf0 = torch.log(pitch.f0.clamp_min(1.0))
    n = v.sum(-1).clamp_min(1)  # (B,)
    mean = (lf0 * v).sum(-1) / n
    std = (((lf0 - mean[:, None]) ** 2) * v).sum(-1).div(n).sqrt().clamp_min(min_std)
    stats = torch.stack([mean, std], dim=-1)  # (B, 2)
    few = (v.sum(-1) < min_voiced)[:, None]
    return torch.where(few, fallback.to(stats)[None].expand_as(stats), stats)


def map_pitch(pitch: Pitch, source: torch.Tensor, target: torch.Tensor, shift_semitones: float = 0.0) -> Pitch:
    """Move each item's contour from ``source`` to ``target`` ln-F0 statistics (``Tensor[B x 2]`` each,
    ``[mean, std]``) and shift by ``shift_semitones``; voicing is kept."""
    lf0 = torch.log(pitch.f0.clamp_min(1.0))
    mapped = pitch_lib.map_log_f0(lf0, (source[:, :1], source[:, 1:]), (target[:, :1], target[:, 1:]),
                                  shift_semitones)
    return Pitch(torch.exp(mapped), pitch.voiced)


class PitchPredictor(nn.Module):
    """Codes -> F0: ``z : Tensor[B x D x N]`` (+ speaker ``c : Tensor[B x cond_dim]``) ->
    ``Tensor[B x 2 x N * upsample]``: speaker-normalised ln F0 and the voicing logit per F0 frame."""

    def __init__(self, in_dim: int, cond_dim: int, width: int = 64, upsample: int = 1) -> None:
        super().__init__()
        self.inp = nn.Conv1d(in_dim, width, 5, padding=2)
        self.film = FiLM1d(cond_dim, width) if cond_dim else None
        self.body = nn.Sequential(nn.ReLU(), nn.Conv1d(width, width, 5, padding=2), nn.ReLU())
        self.up = Upsample1d(width, width, upsample) if upsample > 1 else nn.Identity()
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(width, width, 5, padding=2), nn.ReLU(), nn.Conv1d(width, 2, 1))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(z)  # (B, W, N)
        if self.film is not None:
            if c is None:
                raise UsageError("this F0 predictor is speaker-conditioned: pass c = Tensor[B x cond_dim]")
            h = self.film(h, c)
        return self.out(self.up(self.body(h)))  # (B, 2, N * upsample)


class PitchConditioner(nn.Module):
    """F0 extraction settings, speaker statistics, the NSF source, the decoder's F0 feature, the predictor.

    Args:
        settings: how F0 is extracted (method, rate, hop, range).
        stats: ``{speaker: [mean, std]}`` of ln F0 over voiced frames, with :data:`GLOBAL` for all of them.
        names: the speaker table's names (``stats`` must cover them); ``[]`` for a model without speakers.
        latent_dim: the width of the quantized vectors the decoder and the predictor read.
        speaker_dim: the speaker vector's width (0: no speaker conditioning).
        code_hop: the hop of the level the predictor reads (a multiple of ``settings.hop``).
        synth: what the pitch decoders take as ``source``: ``nsf``, the NSF excitation (:class:`HarmonicSource`);
            ``hpn``, F0 in Hz and voicing at the sample rate, for :class:`HarmonicNoiseDecoder`.
    """

    table: torch.Tensor  # buffers, registered in __init__: (S, 2) ln-F0 [mean, std] per speaker
    global_stats: torch.Tensor  # (2,)

    def __init__(self, settings: PitchSettings, stats: Mapping[str, Sequence[float]], names: Sequence[str],
                 latent_dim: int, speaker_dim: int, code_hop: int, harmonics: int = 8, width: int = 64,
                 synth: str = "nsf") -> None:
        super().__init__()
        if synth not in SYNTHS:
            raise UsageError(f"synth={synth!r} is unknown; use one of {SYNTHS}")
        if code_hop % settings.hop:
            raise UsageError(f"the F0 hop ({settings.hop} samples) must divide the pitch level's hop ({code_hop})")
        missing = [n for n in [*names, GLOBAL] if n not in stats]
        if missing:
            raise UsageError(f"pitch stats lack {missing[:3]}: `audiolvm train` fills model.pitch.stats from the "
                             "training corpus; give [mean, std] of ln F0 for every training speaker and '*'")
        self.settings, self.names, self.ratio = settings, list(names), code_hop // settings.hop
        table = [list(stats[n]) for n in self.names] or [list(stats[GLOBAL])]
        self.register_buffer("table", torch.tensor(table, dtype=torch.float32), persistent=False)  # (S, 2)
        self.register_buffer("global_stats", torch.tensor(list(stats[GLOBAL]), dtype=torch.float32),
                             persistent=False)  # (2,)
        self.source = HarmonicSource(settings.sample_rate, settings.hop, harmonics) if synth == "nsf" else None
        self.frame_proj = nn.Conv1d(2, latent_dim, 3, padding=1)
        self.predictor = PitchPredictor(latent_dim, speaker_dim, width, self.ratio)

    def add_speaker(self, name: str, stats: Sequence[float]) -> None:
        """Append an enrolled speaker's ln-F0 ``[mean, std]`` to the table (after the speaker table's rows)."""
        row = torch.tensor([list(stats)], dtype=self.table.dtype, device=self.table.device)
        self.table = torch.cat([self.table, row])  # (S + 1, 2)
        self.names.append(name)

    # ------------------------------------------------------------------------------ F0 of audio
    def extract(self, x: torch.Tensor) -> Pitch:
        """F0 of ``x : Tensor[B x 1 x T]`` with the model's extractor -> :class:`Pitch` of ``T // hop + 1`` frames."""
        waves = x.detach().float().cpu().reshape(x.shape[0], -1).numpy().astype(np.float64)  # (B, T)
        tracks = [pitch_lib.extract_pitch(w, self.settings) for w in waves]
        p = pitch_from_arrays([t[0] for t in tracks], [t[1] for t in tracks])
        return Pitch(p.f0.to(x.device), p.voiced.to(x.device))

    def speaker_stats(self, speaker: torch.Tensor | None, batch: int) -> torch.Tensor:
        """``Tensor[B x 2]`` ln-F0 ``[mean, std]`` of the target: training-speaker ids from the table, a
        reference clip ``Tensor[B x 1 x T]`` from its own F0; anything else (vectors, None) the global stats."""
        if speaker is not None and not speaker.is_floating_point() and self.names:
            return self.table[speaker]
        if speaker is not None and speaker.dim() == 3:
            return voiced_log_stats(self.extract(speaker), self.global_stats)
        return self.global_stats[None].expand(batch, 2)

    # ------------------------------------------------------------------------------ decoder inputs
    def frame_features(self, pitch: Pitch, frames: int) -> torch.Tensor:
        """Normalised log-F0 and voicing averaged over each code frame -> ``Tensor[B x D x frames]``."""
        v = pitch.voiced.float()
        feats = fit_frames(torch.stack([log_f0_feature(pitch.f0, v), v], dim=1), frames * self.ratio)  # (B, 2, F)
        return self.frame_proj(F.avg_pool1d(feats, self.ratio))  # (B, D, frames)

    def excitation(self, pitch: Pitch, length: int) -> torch.Tensor:
        """What a pitch decoder takes, ``Tensor[B x 2 x length]``: the NSF excitation (merged harmonics, noise),
        or for the harmonic-plus-noise decoder F0 in Hz and voicing (0..1) interpolated to the sample rate."""
        if self.source is not None:
            return self.source(pitch.f0, pitch.voiced, length)
        return frames_to_samples(torch.stack([pitch.f0.float(), pitch.voiced.float()], dim=1), self.settings.hop,
                                 length)

    # ------------------------------------------------------------------------------ predictor
    def predict(self, z: torch.Tensor, c: torch.Tensor | None, stats: torch.Tensor, frames: int) -> Pitch:
        """F0 for codes ``z : Tensor[B x D x N]`` in the voice whose ln-F0 stats are ``Tensor[B x 2]``."""
        out = fit_frames(self.predictor(z, c), frames)  # (B, 2, frames)
        lf0 = stats[:, :1] + stats[:, 1:] * out[:, 0]
        return Pitch(torch.exp(lf0), (out[:, 1] > 0).float())

    def predictor_losses(self, z: torch.Tensor, c: torch.Tensor | None, pitch: Pitch,
                         stats: torch.Tensor) -> dict[str, torch.Tensor]:
        """``pitch/f0``: L1 on speaker-normalised ln F0 over voiced frames; ``pitch/voicing``: BCE. The inputs
        are detached, so the predictor learns from the codes without shaping them."""
        out = fit_frames(self.predictor(z.detach(), None if c is None else c.detach()), pitch.f0.shape[-1])
        v = pitch.voiced.float()
        target = (torch.log(pitch.f0.clamp_min(1.0)) - stats[:, :1]) / stats[:, 1:]  # (B, N)
        f0_loss = ((out[:, 0] - target).abs() * v).sum() / v.sum().clamp_min(1.0)
        voicing = F.binary_cross_entropy_with_logits(out[:, 1], v)
        return {"pitch/f0": f0_loss, "pitch/voicing": voicing}
