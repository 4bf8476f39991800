"""Multi-resolution STFT loss (spectral convergence + log magnitude), as in Jukebox's multispectral
loss and Parallel WaveGAN's multi-resolution STFT loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from audiolvm.core.features import stft_magnitude


def spectral_convergence(mag_pred: torch.Tensor, mag_true: torch.Tensor) -> torch.Tensor:
    """``||S - S_hat||_F / ||S||_F`` per item, averaged over the batch. Inputs ``Tensor[B x F x N]``."""
    num = (mag_true - mag_pred).flatten(1).norm(dim=1)  # (B,)
    den = mag_true.flatten(1).norm(dim=1).clamp_min(1e-7)  # (B,)
    return (num / den).mean()


def log_magnitude_distance(mag_pred: torch.Tensor, mag_true: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of log magnitudes."""
    return (torch.log(mag_true.clamp_min(1e-5)) - torch.log(mag_pred.clamp_min(1e-5))).abs().mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Sum over resolutions of (spectral convergence + log-magnitude L1), divided by the number of
    resolutions. Inputs are waveforms ``Tensor[B x 1 x T]`` or ``Tensor[B x T]``.

    ``forward`` returns ``{"sc": ..., "logmag": ...}`` so both parts can be logged and weighted.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        hop_sizes: Sequence[int] = (240, 120, 50),
        win_sizes: Sequence[int] = (1200, 600, 240),
    ) -> None:
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_sizes):
            raise ValueError(
                f"stft resolutions: fft_sizes, hop_sizes, win_sizes must have equal lengths, got "
                f"{len(fft_sizes)}, {len(hop_sizes)}, {len(win_sizes)}"
            )
        self.resolutions = list(zip(fft_sizes, hop_sizes, win_sizes, strict=True))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        sc = pred.new_zeros((), dtype=torch.float32)
        logmag = pred.new_zeros((), dtype=torch.float32)
        for n_fft, hop, win in self.resolutions:
            mag_p = stft_magnitude(pred, n_fft, hop, win)
            mag_t = stft_magnitude(target, n_fft, hop, win)
            sc = sc + spectral_convergence(mag_p, mag_t)
            logmag = logmag + log_magnitude_distance(mag_p, mag_t)
        n = len(self.resolutions)
        return {"sc": sc / n, "logmag": logmag / n}
