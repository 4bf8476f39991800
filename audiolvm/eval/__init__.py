"""Metrics and probes (codebook usage now; reconstruction metrics, NLL and probes later)."""

from audiolvm.eval.codebook import CodebookUsage, codebook_usage
from audiolvm.eval.plots import plot_spectrograms

__all__ = ["CodebookUsage", "codebook_usage", "plot_spectrograms"]
