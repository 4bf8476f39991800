"""Reconstruction-quality metrics, one value per item, and a per-level report.

Every metric takes ``pred, target: Tensor[B x T]`` or ``Tensor[B x 1 x T]`` (or ``Tensor[T]``, read as
one item) of equal shape and returns ``Tensor[B]`` (float32) on the input's device. Items are computed
in one batched pass (no Python loop over items), and item ``i``'s value does not depend on the other
items of its batch.

``si_sdr`` follows Le Roux et al. (2019), "SDR - half-baked or well done?": both signals are made
zero-mean, the target is scaled by the optimal ``alpha = <pred, target> / ||target||^2`` and
``SI-SDR = 10 log10(||alpha target||^2 / ||alpha target - pred||^2)``. The optimal scale may be
negative, so a polarity-inverted copy (``pred = -target``) is a *perfect* reconstruction under the
standard definition (very large SI-SDR). ``nonnegative_scale=True`` clamps ``alpha >= 0``, under which
an inverted copy scores as badly as uncorrelated noise (very small SI-SDR); for positively correlated
estimates, i.e. any usable reconstruction, the two agree exactly.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from audiolvm.core.errors import UsageError
from audiolvm.core.features import stft_magnitude
from audiolvm.core.files import atomic_write_text
from audiolvm.eval.codebook import CodebookUsage
from audiolvm.losses.spectral import MEL_FFT_SIZES, MultiResolutionSTFTLoss, MultiScaleMelLoss, spectral_convergence

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Cell = str | int | float | None


def _as_batch(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and flatten to float32 ``Tensor[B x T]`` each."""
    if pred.shape != target.shape:
        raise UsageError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have equal shapes")
    if pred.dim() == 1:
        pred, target = pred[None], target[None]  # (T,) -> (1, T)
    elif pred.dim() == 3 and pred.shape[1] == 1:
        pred, target = pred[:, 0], target[:, 0]  # (B, 1, T) -> (B, T)
    elif pred.dim() != 2:
        raise UsageError(
            f"expected mono audio Tensor[B x T] or Tensor[B x 1 x T], got shape {tuple(pred.shape)}; "
            "evaluate each channel separately"
        )
    return pred.float(), target.float()


def si_sdr(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8, nonnegative_scale: bool = False
) -> torch.Tensor:
    """Scale-invariant SDR in dB, ``Tensor[B]`` (see the module docstring for the definition).

    ``eps`` is added to both energies, so an all-zero ``pred`` scores 0 dB. With
    ``nonnegative_scale=True`` the optimal scale is clamped at 0, so ``pred = -target`` gives
    ``10 log10(eps / ||target||^2)`` (very negative) instead of a very large value.
    """
    p, t = _as_batch(pred, target)
    p = p - p.mean(dim=1, keepdim=True)  # (B, T), zero-mean
    t = t - t.mean(dim=1, keepdim=True)
    alpha = (p * t).sum(dim=1, keepdim=True) / (t.square().sum(dim=1, keepdim=True) + eps)  # (B, 1)
    if nonnegative_scale:
        alpha = alpha.clamp_min(0.0)
    scaled = alpha * t  # (B, T), the part of pred explained by target
    noise = p - scaled
    return 10 * torch.log10((scaled.square().sum(dim=1) + eps) / (noise.square().sum(dim=1) + eps))


@functools.lru_cache(maxsize=64)
def _mel_loss(sample_rate: int, fft_sizes: tuple[int, ...], device: torch.device) -> MultiScaleMelLoss:
    """One cached per-item mel loss per (rate, scales, device), so repeated calls reuse the filterbanks."""
    return MultiScaleMelLoss(sample_rate, fft_sizes, reduction="none").to(device)


def multiscale_mel_distance(
    pred: torch.Tensor, target: torch.Tensor, sample_rate: int, fft_sizes: Sequence[int] = MEL_FFT_SIZES
) -> torch.Tensor:
    """Mean over scales of the L1 distance between natural-log mel power spectrograms, ``Tensor[B]``
    (the training term ``mel`` of :class:`MultiScaleMelLoss`, per item). Identical inputs give exactly 0."""
    p, t = _as_batch(pred, target)
    return _mel_loss(int(sample_rate), tuple(fft_sizes), p.device)(p, t)


def mrstft_distance(
    pred: torch.Tensor,
    target: torch.Tensor,
    fft_sizes: Sequence[int] = (2048, 1024, 512),
    hop_sizes: Sequence[int] = (240, 120, 50),
    win_sizes: Sequence[int] = (1200, 600, 240),
) -> torch.Tensor:
    """Multi-resolution STFT distance, ``Tensor[B]``: per item, (spectral convergence + log-magnitude
    L1) averaged over resolutions, i.e. ``MultiResolutionSTFTLoss``'s ``sc + logmag`` per item. The
    default resolutions are that loss's defaults (Parallel WaveGAN's)."""
    p, t = _as_batch(pred, target)
    out = MultiResolutionSTFTLoss(fft_sizes, hop_sizes, win_sizes, reduction="none")(p, t)
    return out["sc"] + out["logmag"]  # (B,)


def spectral_convergence_per_item(
    pred: torch.Tensor, target: torch.Tensor, n_fft: int = 2048, hop_length: int = 512
) -> torch.Tensor:
    """``||S - S_hat||_F / ||S||_F`` of STFT magnitudes at one resolution (Hann window n_fft), ``Tensor[B]``."""
    p, t = _as_batch(pred, target)
    mag_p = stft_magnitude(p, n_fft, hop_length)  # (B, F, frames)
    mag_t = stft_magnitude(t, n_fft, hop_length)
    return spectral_convergence(mag_p, mag_t, reduction="none")


def bitrate(sample_rate: float, hop: int, num_codes: int) -> float:
    """Bits per second of one codebook: ``(sample_rate / hop) * log2(num_codes)`` (frames/s x bits/frame).

    Sum over codebooks for residual or multi-codebook quantizers.
    """
    if sample_rate <= 0 or hop <= 0 or num_codes < 1:
        raise UsageError(
            f"bitrate: need sample_rate > 0, hop > 0, num_codes >= 1; got {sample_rate}, {hop}, {num_codes}"
        )
    return sample_rate / hop * math.log2(num_codes)


def codebook_stats(usage: CodebookUsage, sample_rate: int, hop: int) -> dict[str, float]:
    """Codebook columns for ``ReconstructionReport.set_stats`` from corpus-wide usage counts.

    ``dead_codes`` are codes never chosen over the evaluated corpus; ``bitrate_bps`` is the nominal
    rate (``bitrate``), ``entropy_bitrate_bps`` the rate at the observed code entropy, log2(perplexity).
    """
    frame_rate = sample_rate / hop
    return {
        "codes": usage.num_codes,
        "perplexity": usage.perplexity,
        "used_codes": usage.used,
        "dead_codes": usage.num_codes - usage.used,
        "bitrate_bps": bitrate(sample_rate, hop, usage.num_codes),
        "entropy_bitrate_bps": frame_rate * math.log2(max(usage.perplexity, 1.0)),
    }


def default_metrics(sample_rate: int) -> dict[str, MetricFn]:
    """The report's default columns: name -> per-item metric ``(pred, target) -> Tensor[B]``."""
    return {
        "si_sdr_db": si_sdr,
        "mel_distance": functools.partial(multiscale_mel_distance, sample_rate=sample_rate),
        "mrstft_distance": mrstft_distance,
        "spectral_convergence": spectral_convergence_per_item,
    }


def _format(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


class ReconstructionReport:
    """Per-item metrics accumulated per level label (e.g. ``"level 0 (hop 8)"``), plus codebook stats.

    Utterances may have different lengths: ``add`` one item, or a batch of equal-length items, at a time.
    A level's metric is the mean over its items (every utterance weighs the same, whatever its length).
    Levels appear in the order first seen, by ``add`` or ``set_stats``.
    """

    def __init__(self, sample_rate: int, metrics: Mapping[str, MetricFn] | None = None) -> None:
        self.sample_rate = sample_rate
        self.metrics: dict[str, MetricFn] = dict(metrics) if metrics is not None else default_metrics(sample_rate)
        self._values: dict[str, dict[str, list[float]]] = {}  # level -> metric -> per-item values
        self._extra: dict[str, dict[str, float | None]] = {}  # level -> per-level columns
        self._levels: dict[str, None] = {}  # insertion-ordered set

    @torch.no_grad()
    def add(self, level: str, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score ``pred`` against ``target`` (``Tensor[T]``, ``[B x T]`` or ``[B x 1 x T]``) under ``level``.

        Returns each metric's per-item values, ``Tensor[B]``, for the caller to log.
        """
        values = {name: fn(pred, target) for name, fn in self.metrics.items()}
        self._levels.setdefault(level)
        store = self._values.setdefault(level, {name: [] for name in self.metrics})
        for name, v in values.items():
            store[name].extend(v.detach().float().cpu().tolist())
        return values

    def set_stats(self, level: str, stats: Mapping[str, float | None]) -> None:
        """Attach per-level columns to ``level`` (e.g. ``codebook_stats(usage, rate, hop)`` or the pitch summary
        of :class:`audiolvm.eval.pitch.PitchReport`); a column set again replaces its earlier value."""
        self._levels.setdefault(level)
        self._extra.setdefault(level, {}).update(stats)

    def values(self, level: str, metric: str) -> list[float]:
        """Per-item values of one metric at one level, in the order added."""
        return list(self._values.get(level, {}).get(metric, []))

    def rows(self) -> list[dict[str, Cell]]:
        """One row per level: ``level``, ``items``, the mean of each metric (None if no items), per-level columns."""
        rows = []
        for level in self._levels:
            per_metric = self._values.get(level, {})
            row: dict[str, Cell] = {"level": level, "items": len(next(iter(per_metric.values()), []))}
            for name in self.metrics:
                vals = per_metric.get(name, [])
                row[name] = math.fsum(vals) / len(vals) if vals else None
            row.update(self._extra.get(level, {}))
            rows.append(row)
        return rows

    def columns(self) -> list[str]:
        """Every column of ``rows()``, in first-seen order."""
        cols: dict[str, None] = {"level": None, "items": None, **dict.fromkeys(self.metrics)}
        for stats in self._extra.values():
            cols.update(dict.fromkeys(stats))
        return list(cols)

    def to_table(self) -> str:
        """A markdown table, columns padded to equal width, one row per level; missing cells are ``-``."""
        cols, rows = self.columns(), self.rows()
        cells = [cols] + [[_format(r.get(c)) for c in cols] for r in rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]

        def line(values: list[str]) -> str:
            padded = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
            return "| " + " | ".join(padded) + " |"

        rule = "|" + "|".join(("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1)) for i, w in enumerate(widths)) + "|"
        return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write ``rows()`` as CSV (header = ``columns()``; missing cells empty), atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in self.rows())
        return atomic_write_text(path, buf.getvalue())

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write ``rows()`` as a JSON list of objects (missing cells null), atomically."""
        return atomic_write_text(path, json.dumps(self.rows(), indent=2) + "\n")
