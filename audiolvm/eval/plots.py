"""Figures people look at: log-mel spectrograms side by side; the headless pyplot and the one way every
figure of the package is written (``save_figure``)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiolvm.core.features import LogMel
from audiolvm.core.files import atomic_write_bytes


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily: runs are headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, png: str | Path, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``png`` atomically (creating its folder) and close it."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    pyplot().close(fig)
    return atomic_write_bytes(png, buf.getvalue())  # a kill or a full disk never leaves half a PNG


def _log_mels(waves: Mapping[str, np.ndarray], sample_rate: int) -> tuple[dict[str, np.ndarray], float]:
    """Log-mel spectrograms ``(80, frames)`` at 100 frames/s of each wave, and the loudest value of all of them
    (the shared colour scale shows the top 12 nats below it)."""
    mel = LogMel(sample_rate, n_fft=1024, hop_length=max(1, sample_rate // 100), n_mels=80)
    specs = {k: mel(torch.as_tensor(v, dtype=torch.float32)[None])[0].numpy() for k, v in waves.items()}
    return specs, max(float(s.max()) for s in specs.values())


def _show_spectrogram(ax: Any, spec: np.ndarray, vmax: float) -> None:
    ax.imshow(spec, origin="lower", aspect="auto", vmin=vmax - 12, vmax=vmax,
              extent=(0, spec.shape[1] / 100, 0, spec.shape[0]))


def plot_spectrograms(waves: Mapping[str, np.ndarray], sample_rate: int, png: str | Path, title: str = "") -> Path:
    """One log-mel panel per labelled waveform, stacked vertically with a shared colour scale."""
    plt = pyplot()
    specs, vmax = _log_mels(waves, sample_rate)
    fig, axes = plt.subplots(len(specs), 1, figsize=(8, 2.2 * len(specs)), squeeze=False)
    for ax, (label, spec) in zip(axes[:, 0], specs.items(), strict=True):
        _show_spectrogram(ax, spec, vmax)
        ax.set_ylabel(f"{label}\nmel bin", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time (s)", fontsize=8)
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    return save_figure(fig, png)


def plot_spectrogram_each(waves: Mapping[str, np.ndarray], sample_rate: int,
                          pngs: Mapping[str, str | Path]) -> list[Path]:
    """A small log-mel spectrogram PNG per labelled waveform (400 x 130 px, to sit beside its player), all on one
    colour scale, as :func:`plot_spectrograms`."""
    plt = pyplot()
    specs, vmax = _log_mels(waves, sample_rate)
    written = []
    for label, spec in specs.items():
        fig, ax = plt.subplots(figsize=(4.0, 1.3))
        _show_spectrogram(ax, spec, vmax)
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
        written.append(save_figure(fig, pngs[label]))
    return written


def plot_pitch_tracks(tracks: Mapping[str, tuple[np.ndarray, np.ndarray]], frame_seconds: float, png: str | Path,
                      title: str = "", bands: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """F0 tracks on one log-frequency axis: ``{label: (f0 (N,) Hz, voiced (N,) bool)}``, one frame every
    ``frame_seconds``; unvoiced frames are gaps. ``bands`` shades a labelled F0 range per voice (e.g. a
    speaker's median F0 +- one standard deviation)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, ((label, (f0, voiced)), color) in enumerate(zip(tracks.items(),
                                                           plt.rcParams["axes.prop_cycle"].by_key()["color"],
                                                           strict=False)):
        y = np.where(np.asarray(voiced, dtype=bool), np.asarray(f0, dtype=np.float64), np.nan)  # gaps where unvoiced
        # the first track (the original) wide and pale underneath, so a reconstruction that follows it closely
        # does not hide it
        style = dict(linewidth=4.0, alpha=0.35, zorder=1) if i == 0 and len(tracks) > 1 else dict(linewidth=1.2)
        ax.plot(np.arange(len(y)) * frame_seconds, y, label=label, color=color, **style)
        if bands and label in bands:
            ax.axhspan(*bands[label], color=color, alpha=0.12)
    ax.set_yscale("log")
    ticks = [t for t in (50, 75, 100, 150, 200, 300, 400, 600) if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    ax.set_yticks(ticks, [str(t) for t in ticks], minor=False)
    ax.set_yticks([], minor=True)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("F0 (Hz)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, png)
