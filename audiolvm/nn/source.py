"""The excitation of a neural source-filter decoder (NSF, Wang et al. 2019): sine harmonics at F0 plus noise.

A small conv decoder cannot learn cheaply to produce a periodic signal at a given F0 from codes at 62.5 Hz;
NSF hands it the periodicity as an explicit input and lets the network learn only the filter. The source
here is NSF's harmonic-plus-noise module: ``harmonics`` sines at ``k * F0`` (muted above Nyquist and in
unvoiced samples), Gaussian noise (weak where voiced, stronger where unvoiced), merged into one channel by a
learned linear map and ``tanh``; the noise is returned as a second channel for the unvoiced sounds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError


def frames_to_samples(frames: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """Linear interpolation of frame values ``Tensor[... x N]`` (frame ``n`` at sample ``n * hop``) to
    ``Tensor[... x length]``; samples past the last frame take its value."""
    shape, n = frames.shape[:-1], frames.shape[-1]
    need = max(n, -(-length // hop) + 1)  # frames to cover ``length`` samples, the last one repeated
    flat = F.pad(frames.reshape(-1, 1, n), (0, need - n), mode="replicate") if need > n else frames.reshape(-1, 1, n)
    out = F.interpolate(flat, size=(need - 1) * hop + 1, mode="linear", align_corners=True)  # frame n at n * hop
    return out[..., :length].reshape(*shape, length)


def fit_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """Crop or edge-pad the last axis of ``x`` to ``n``."""
    return x[..., :n] if x.shape[-1] >= n else F.pad(x, (0, n - x.shape[-1]), mode="replicate")


LOG_F0_CENTER, LOG_F0_SCALE = math.log(150.0), 0.5  # a decoder's log-F0 input: (ln F0 - c) / s where voiced


def log_f0_feature(f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Normalised ln F0 where voiced, 0 where not: ``(ln F0 - ln 150) / 0.5 * voiced``, same shape."""
    return (torch.log(f0.float().clamp_min(1.0)) - LOG_F0_CENTER) / LOG_F0_SCALE * voiced.float()


def eval_generator(ref: torch.Tensor, training: bool) -> torch.Generator | None:
    """None in training (the global RNG, which checkpoints save); a generator seeded 0 in eval, so eval-mode
    noise, and with it decoding, is deterministic."""
    return None if training else torch.Generator(device=ref.device).manual_seed(0)


class HarmonicSource(nn.Module):
    """F0 and voicing per frame -> excitation ``Tensor[B x 2 x T]`` (merged harmonics, noise).

    Args:
        sample_rate: output rate.
        hop: samples between F0 frames.
        harmonics: number of sines (``k = 1..harmonics``).
        sine_amp: amplitude of each sine where voiced.
        noise_std: noise level where voiced (where unvoiced it is ``sine_amp / 3``, as in NSF).

    In training every harmonic starts at a random phase; in eval mode at phase 0 with noise from a fixed
    seed, so eval-mode decoding is deterministic.
    """

    def __init__(self, sample_rate: int, hop: int, harmonics: int = 8, sine_amp: float = 0.1,
                 noise_std: float = 0.003) -> None:
        super().__init__()
        if harmonics < 1 or hop < 1 or sample_rate < 1:
            raise UsageError(f"HarmonicSource: harmonics={harmonics}, hop={hop}, sample_rate={sample_rate}; "
                             "each must be >= 1")
        self.sample_rate, self.hop, self.harmonics = sample_rate, hop, harmonics
        self.sine_amp, self.noise_std = sine_amp, noise_std
        self.merge = nn.Linear(harmonics, 1)
        with torch.no_grad():  # start as a 1/k-weighted sum: the fundamental dominates the spectrum
            self.merge.weight.copy_(1.0 / torch.arange(1, harmonics + 1, dtype=torch.float32)[None])
            self.merge.bias.zero_()

    def _noise(self, shape: tuple[int, ...], ref: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, device=ref.device, dtype=ref.dtype, generator=eval_generator(ref, self.training))

    def sines(self, f0: torch.Tensor, voiced: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(harmonics Tensor[B x H x T], voiced Tensor[B x 1 x T])`` before noise and merging."""
        f0_s, v_s = frames_to_samples(torch.stack([f0, voiced]).double(), self.hop, length)  # (2, B, T)
        v_s = (v_s >= 0.5).to(f0.dtype)[:, None]  # (B, 1, T)
        phase = 2 * math.pi * torch.cumsum(f0_s / self.sample_rate, dim=-1)  # (B, T), float64 for long inputs
        k = torch.arange(1, self.harmonics + 1, device=f0.device, dtype=torch.float64)[None, :, None]  # (1, H, 1)
        start = (2 * math.pi * torch.rand(f0.shape[0], self.harmonics, 1, device=f0.device, dtype=torch.float64)
                 if self.training else 0.0)
        audible = (k * f0_s[:, None] < self.sample_rate / 2).to(f0.dtype)  # (B, H, T): mute above Nyquist
        sines = torch.sin(torch.remainder(k * phase[:, None] + start, 2 * math.pi)).to(f0.dtype)  # (B, H, T)
        return self.sine_amp * sines * audible * v_s, v_s

    def forward(self, f0: torch.Tensor, voiced: torch.Tensor, length: int) -> torch.Tensor:
        """``f0 : Tensor[B x N]`` in Hz (any value where unvoiced), ``voiced : Tensor[B x N]`` in {0, 1} ->
        ``Tensor[B x 2 x length]``."""
        if f0.dim() != 2 or f0.shape != voiced.shape:
            raise UsageError(f"f0 and voiced must both be Tensor[B x N], got {tuple(f0.shape)} and "
                             f"{tuple(voiced.shape)}")
        f0 = f0.float().clamp_min(0.0)
        harm, v_s = self.sines(f0, voiced.float(), length)
        noise_amp = v_s * self.noise_std + (1 - v_s) * self.sine_amp / 3  # (B, 1, T)
        noisy = harm + noise_amp * self._noise(tuple(harm.shape), harm)  # (B, H, T)
        merged = torch.tanh(self.merge(noisy.transpose(1, 2))).transpose(1, 2)  # (B, T, H) -> (B, 1, T)
        noise = noise_amp * self._noise((harm.shape[0], 1, length), harm)  # (B, 1, T)
        return torch.cat([merged, noise], dim=1)  # (B, 2, T)
