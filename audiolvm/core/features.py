"""Spectral features in torch (CPU and GPU): STFT magnitudes and log-mel spectrograms.

The mel filterbank comes from librosa (``librosa.filters.mel``) so our mels match the reference
implementation; everything else is plain torch and runs on whatever device the input is on.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch
from torch import nn


@functools.lru_cache(maxsize=32)
def _hann(win_length: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(win_length, device=device, dtype=dtype)


def stft_magnitude(
    wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None, power: float = 1.0
) -> torch.Tensor:
    """Magnitude STFT.

    Args:
        wave: ``Tensor[B x T]`` or ``Tensor[B x 1 x T]`` (or ``Tensor[T]``).
    Returns:
        ``Tensor[B x (n_fft // 2 + 1) x frames]``, ``|STFT| ** power`` (float32).
    """
    if wave.dim() == 3:
        wave = wave.squeeze(1)  # (B, 1, T) -> (B, T)
    win_length = win_length or n_fft
    x = wave.float()
    window = _hann(win_length, str(x.device), x.dtype)
    spec = torch.stft(x, n_fft, hop_length, win_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # zero padding at the edges, as librosa >= 0.10
    mag = spec.real.square() + spec.imag.square()  # (B, F, frames), |S|^2
    # clamp keeps the gradient finite where the spectrum is exactly zero (e.g. digital silence)
    return mag.clamp_min(1e-12).pow(power / 2)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """librosa's Slaney-normalised mel filterbank, ``[n_mels x (n_fft // 2 + 1)]``."""
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


class LogMel(nn.Module):
    """Log-mel spectrogram: ``Tensor[B x T]`` -> ``Tensor[B x n_mels x frames]`` (natural log)."""

    filterbank: torch.Tensor  # buffer (n_mels, F), registered in __init__

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: float | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.eps = n_fft, hop_length, eps
        fb = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))
        self.register_buffer("filterbank", fb, persistent=False)  # (n_mels, F)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = stft_magnitude(wave, self.n_fft, self.hop_length, power=2.0)  # (B, F, frames)
        mel = torch.matmul(self.filterbank, power)  # (n_mels, F) @ (B, F, frames) -> (B, n_mels, frames)
        return torch.log(mel + self.eps)
