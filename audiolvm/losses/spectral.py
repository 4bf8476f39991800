"""Multi-resolution STFT loss (spectral convergence + log magnitude), as in Jukebox's multispectral
loss and Parallel WaveGAN's multi-resolution STFT loss.

Every function takes ``reduction="mean"`` (a scalar batch mean, what training uses) or
``reduction="none"`` (one value per item, ``Tensor[B]``, what evaluation uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.core.features import LogMel, stft_magnitude

Reduction = Literal["mean", "none"]
#: mel scales (FFT size = window length), as DAC's mel loss: windows 32..2048 samples, hop = n_fft // 4
MEL_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64, 32)


def _reduce(per_item: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """``Tensor[B]`` -> ``Tensor[B]`` (``"none"``) or its mean, a scalar (``"mean"``)."""
    if reduction == "mean":
        return per_item.mean()
    if reduction == "none":
        return per_item
    raise UsageError(f"reduction={reduction!r}: expected 'mean' or 'none'")


def spectral_convergence(
    mag_pred: torch.Tensor, mag_true: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """``||S - S_hat||_F / ||S||_F`` per item. Inputs ``Tensor[B x F x N]``; returns the batch mean
    (``reduction="mean"``) or ``Tensor[B]`` (``reduction="none"``)."""
    num = (mag_true - mag_pred).flatten(1).norm(dim=1)  # (B, F*N) -> (B,)
    den = mag_true.flatten(1).norm(dim=1).clamp_min(1e-7)  # (B,)
    return _reduce(num / den, reduction)


def log_magnitude_distance(
    mag_pred: torch.Tensor, mag_true: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Mean absolute difference of log magnitudes over ``F x N`` per item. Inputs ``Tensor[B x F x N]``;
    returns the batch mean (``reduction="mean"``) or ``Tensor[B]`` (``reduction="none"``)."""
    diff = (torch.log(mag_true.clamp_min(1e-5)) - torch.log(mag_pred.clamp_min(1e-5))).abs()  # (B, F, N)
    return _reduce(diff.flatten(1).mean(dim=1), reduction)  # (B, F*N) -> (B,)


class MultiResolutionSTFTLoss(nn.Module):
    """Sum over resolutions of (spectral convergence + log-magnitude L1), divided by the number of
    resolutions. Inputs are waveforms ``Tensor[B x 1 x T]`` or ``Tensor[B x T]``.

    ``forward`` returns ``{"sc": ..., "logmag": ...}`` so both parts can be logged and weighted: scalars
    (batch means) with ``reduction="mean"``, ``Tensor[B]`` per item with ``reduction="none"``.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        hop_sizes: Sequence[int] = (240, 120, 50),
        win_sizes: Sequence[int] = (1200, 600, 240),
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_sizes):
            raise UsageError(
                f"stft resolutions: fft_sizes, hop_sizes, win_sizes must have equal lengths, got "
                f"{len(fft_sizes)}, {len(hop_sizes)}, {len(win_sizes)}"
            )
        _reduce(torch.zeros(1), reduction)  # validate early
        self.resolutions = list(zip(fft_sizes, hop_sizes, win_sizes, strict=True))
        self.reduction: Reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        sc = pred.new_zeros((), dtype=torch.float32)
        logmag = pred.new_zeros((), dtype=torch.float32)
        for n_fft, hop, win in self.resolutions:
            mag_p = stft_magnitude(pred, n_fft, hop, win)  # (B, F, frames)
            mag_t = stft_magnitude(target, n_fft, hop, win)
            sc = sc + spectral_convergence(mag_p, mag_t, self.reduction)
            logmag = logmag + log_magnitude_distance(mag_p, mag_t, self.reduction)
        n = len(self.resolutions)
        return {"sc": sc / n, "logmag": logmag / n}


def mel_scales(fft_sizes: Sequence[int] = MEL_FFT_SIZES) -> list[tuple[int, int, int]]:
    """``(n_fft, hop, n_mels)`` per scale: hop ``n_fft // 4`` and ``n_mels = n_fft // 8``.

    ``n_fft // 8`` mel bands (4 at 32 .. 256 at 2048, DAC uses 5 .. 320) is the largest simple ratio
    for which librosa's filterbank has no empty band at any rate from 8 to 48 kHz.
    """
    return [(n, max(1, n // 4), max(1, n // 8)) for n in fft_sizes]


class MultiScaleMelLoss(nn.Module):
    """L1 between natural-log mel power spectrograms, averaged over bands and frames, then over the
    scales of :func:`mel_scales` (DAC's mel loss). ``forward(pred, target)`` on waveforms
    ``Tensor[B x T]`` or ``Tensor[B x 1 x T]`` gives the batch mean or ``Tensor[B]`` (``reduction``)."""

    def __init__(self, sample_rate: int, fft_sizes: Sequence[int] = MEL_FFT_SIZES, reduction: Reduction = "mean"):
        super().__init__()
        if not fft_sizes:
            raise UsageError("MultiScaleMelLoss: fft_sizes is empty; give at least one FFT size, e.g. [1024]")
        _reduce(torch.zeros(1), reduction)  # validate early
        self.mels = nn.ModuleList(LogMel(sample_rate, n_fft=n, hop_length=h, n_mels=m)
                                  for n, h, m in mel_scales(fft_sizes))
        self.reduction: Reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, t = pred.reshape(-1, pred.shape[-1]).float(), target.reshape(-1, target.shape[-1]).float()  # (B, T)
        total = p.new_zeros(p.shape[0])  # (B,)
        for mel in self.mels:
            total = total + (mel(p) - mel(t)).abs().flatten(1).mean(dim=1)  # (B, n_mels, frames) -> (B,)
        return _reduce(total / len(self.mels), self.reduction)
