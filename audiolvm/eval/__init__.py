"""Metrics and probes: codebook usage, reconstruction quality, disentanglement (MIG, FactorVAE), image grids."""

from audiolvm.eval.codebook import CodebookUsage, codebook_usage
from audiolvm.eval.disentangle import FactorSource, FactorVAEResult, MIGResult, factor_vae_score, mig
from audiolvm.eval.evaluate import evaluate_model, level_label
from audiolvm.eval.image_grids import (
    analogy_images,
    interpolation_images,
    sample_images,
    save_grid,
    traversal_images,
)
from audiolvm.eval.plots import plot_spectrograms
from audiolvm.eval.reconstruction import (
    MEL_FFT_SIZES,
    ReconstructionReport,
    bitrate,
    codebook_stats,
    default_metrics,
    mrstft_distance,
    multiscale_mel_distance,
    si_sdr,
    spectral_convergence_per_item,
)
from audiolvm.losses.spectral import mel_scales

__all__ = [
    "MEL_FFT_SIZES",
    "CodebookUsage",
    "FactorSource",
    "FactorVAEResult",
    "MIGResult",
    "ReconstructionReport",
    "analogy_images",
    "bitrate",
    "codebook_stats",
    "codebook_usage",
    "default_metrics",
    "evaluate_model",
    "factor_vae_score",
    "interpolation_images",
    "level_label",
    "mel_scales",
    "mig",
    "mrstft_distance",
    "multiscale_mel_distance",
    "plot_spectrograms",
    "sample_images",
    "save_grid",
    "si_sdr",
    "spectral_convergence_per_item",
    "traversal_images",
]
