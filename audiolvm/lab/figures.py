"""Matplotlib (Agg) helpers for the lab's figures: the package's shared ones (``audiolvm.eval.plots``)."""

from __future__ import annotations

from audiolvm.eval.plots import pyplot
from audiolvm.eval.plots import save_figure as save

__all__ = ["pyplot", "save"]
