"""Figures people look at: log-mel spectrograms side by side."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from audiolvm.core.features import LogMel


def plot_spectrograms(waves: Mapping[str, np.ndarray], sample_rate: int, png: str | Path, title: str = "") -> Path:
    """One log-mel panel per labelled waveform, stacked vertically with a shared colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
