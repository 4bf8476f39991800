"""Metrics and probes: codebook usage, reconstruction quality (NLL and probes later)."""

from audiolvm.eval.codebook import CodebookUsage, codebook_usage
from audiolvm.eval.evaluate import evaluate_model, iter_audio, level_label
from audiolvm.eval.plots import plot_spectrograms
from audiolvm.eval.reconstruction import (
    MEL_FFT_SIZES,
    ReconstructionReport,
    bitrate,
    codebook_stats,
    default_metrics,
    mel_scales,
    mrstft_distance,
    multiscale_mel_distance,
    si_sdr,
    spectral_convergence_per_item,
)

__all__ = [
    "MEL_FFT_SIZES",
    "CodebookUsage",
    "ReconstructionReport",
    "bitrate",
    "codebook_stats",
    "codebook_usage",
    "default_metrics",
    "evaluate_model",
    "iter_audio",
    "level_label",
    "mel_scales",
    "mrstft_distance",
    "multiscale_mel_distance",
    "plot_spectrograms",
    "si_sdr",
    "spectral_convergence_per_item",
]
