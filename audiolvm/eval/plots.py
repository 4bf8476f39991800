"""Figures people look at: log-mel spectrograms side by side; the headless pyplot and the one way every
figure of the package is written (``save_figure``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiolvm.core.features import LogMel


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily: runs are headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, png: str | Path, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``png`` (creating its folder) and close it."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=dpi)
    pyplot().close(fig)
    return png


def plot_spectrograms(waves: Mapping[str, np.ndarray], sample_rate: int, png: str | Path, title: str = "") -> Path:
    """One log-mel panel per labelled waveform, stacked vertically with a shared colour scale."""
    plt = pyplot()

    mel = LogMel(sample_rate, n_fft=1024, hop_length=max(1, sample_rate // 100), n_mels=80)
    specs = {k: mel(torch.as_tensor(v, dtype=torch.float32)[None])[0].numpy() for k, v in waves.items()}
    vmax = max(s.max() for s in specs.values())
    fig, axes = plt.subplots(len(specs), 1, figsize=(8, 2.2 * len(specs)), squeeze=False)
    for ax, (label, spec) in zip(axes[:, 0], specs.items(), strict=True):
        dur = spec.shape[1] / 100
        ax.imshow(spec, origin="lower", aspect="auto", vmin=vmax - 12, vmax=vmax, extent=(0, dur, 0, spec.shape[0]))
        ax.set_ylabel(f"{label}\nmel bin", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time (s)", fontsize=8)
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    return save_figure(fig, png)
