"""Pitch fidelity and speech quality of a decoded (or converted) wave against its reference.

F0 errors compare the two F0 tracks (:func:`audiolvm.core.pitch.extract_pitch`, same settings) frame by
frame: absolute cents error on the frames voiced in both, and the voicing decision error (VDE, the fraction of
frames whose voiced flag differs). Speech quality is wide-band PESQ (ITU-T P.862.2, ``pesq`` package) and
STOI (``pystoi``), both at 16 kHz. :class:`PitchReport` pools the frames of many utterances per label.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pesq as pesq_lib
from pystoi import stoi as stoi_fn

from audiolvm.core.audio import resample
from audiolvm.core.errors import UsageError
from audiolvm.core.pitch import PitchSettings, extract_pitch, hz_to_cents

log = logging.getLogger("audiolvm.eval.pitch")
PESQ_RATE = 16000  # wide-band PESQ works at 16 kHz only
PITCH_KEYS = ("f0_cents_median", "f0_cents_p90", "vde", "voiced_both")
QUALITY_KEYS = ("pesq_wb", "stoi")


@dataclass(frozen=True)
class _FrameComparison:
    """Frame-level comparison of two F0 tracks: ``cents (M,)`` absolute error on the M frames voiced in both."""

    cents: np.ndarray
    differ: int  # frames whose voiced flag differs
    frames: int

    def metrics(self) -> dict[str, float]:
        has = self.cents.size > 0
        return {"f0_cents_median": float(np.median(self.cents)) if has else math.nan,
                "f0_cents_p90": float(np.percentile(self.cents, 90)) if has else math.nan,
                "vde": self.differ / self.frames, "voiced_both": self.cents.size / self.frames}


def _crop(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both (T,) waves cropped to the shorter length."""
    reference, estimate = np.asarray(reference).reshape(-1), np.asarray(estimate).reshape(-1)
    n = min(len(reference), len(estimate))
    if n == 0:
        raise UsageError(f"empty wave (reference {len(reference)}, estimate {len(estimate)} samples); "
                         "pass non-empty audio")
    return reference[:n], estimate[:n]


Track = tuple[np.ndarray, np.ndarray]  # (f0 (N,) Hz, voiced (N,) bool)


def _compare_tracks(reference: Track, estimate: Track) -> _FrameComparison:
    """Frame-by-frame comparison of two F0 tracks on the same grid (cropped to the shorter)."""
    n = min(len(reference[0]), len(estimate[0]))
    f_ref, f_est = np.asarray(reference[0])[:n], np.asarray(estimate[0])[:n]
    v_ref, v_est = np.asarray(reference[1], dtype=bool)[:n], np.asarray(estimate[1], dtype=bool)[:n]
    both = v_ref & v_est
    cents = np.abs(hz_to_cents(f_est[both], f_ref[both]))  # (M,)
    return _FrameComparison(cents, int((v_ref != v_est).sum()), n)


def _compare(reference: np.ndarray, estimate: np.ndarray, settings: PitchSettings) -> _FrameComparison:
    ref, est = _crop(reference, estimate)
    return _compare_tracks(extract_pitch(ref, settings), extract_pitch(est, settings))


def pitch_metrics(reference: np.ndarray, estimate: np.ndarray, settings: PitchSettings) -> dict[str, float]:
    """F0 errors of ``estimate`` against ``reference`` (both (T,) at ``settings.sample_rate``; cropped to the
    shorter). Keys: ``f0_cents_median``, ``f0_cents_p90`` (absolute cents error on frames voiced in both; NaN if
    none), ``vde`` (fraction of frames whose voiced flag differs), ``voiced_both`` (fraction voiced in both)."""
    return _compare(reference, estimate, settings).metrics()


def speech_quality(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``pesq_wb`` (wide-band PESQ, MOS-LQO 1.04..4.64) and ``stoi`` (0..1) of ``estimate`` against ``reference``
    (both (T,) at ``sample_rate``, resampled to 16 kHz with soxr if needed, cropped to the shorter). A score the
    library cannot compute (e.g. PESQ finds no utterance) is NaN, with a warning; this never raises for that."""
    ref, est = _crop(resample(np.asarray(reference, dtype=np.float32), sample_rate, PESQ_RATE),
                     resample(np.asarray(estimate, dtype=np.float32), sample_rate, PESQ_RATE))
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    out = {}
    for key, fn in (("pesq_wb", lambda: pesq_lib.pesq(PESQ_RATE, ref, est, "wb")),
                    ("stoi", lambda: stoi_fn(ref, est, PESQ_RATE, extended=False))):
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # pesq divides by the peak, 0 for silence
                out[key] = float(fn())
        except Exception as exc:  # pesq raises PesqError subclasses, and C-level errors as others
            log.warning("%s not computed for a %.2f s utterance (%s: %s); recorded as NaN",
                        key, len(ref) / PESQ_RATE, type(exc).__name__, exc)
            out[key] = math.nan
    return out


class PitchReport:
    """Pitch and quality metrics of (reference, estimate) pairs, accumulated per label (e.g. ``"level 0 (hop 256)"``).

    F0 cents are pooled over the frames of all of a label's items (median and p90 of the pooled errors), as are
    ``vde`` and ``voiced_both`` (pooled frame fractions); ``pesq_wb`` and ``stoi`` are means over the items that
    have a score. Labels appear in the order first added.
    """

    def __init__(self, settings: PitchSettings, quality: bool = True) -> None:
        self.settings, self.quality = settings, quality
        self._frames: dict[str, list[_FrameComparison]] = {}
        self._items: dict[str, list[dict[str, float]]] = {}

    def add(self, label: str, reference: np.ndarray, estimate: np.ndarray,
            reference_track: Track | None = None) -> dict[str, float]:
        """Score one pair (both (T,) at ``settings.sample_rate``) under ``label``; returns its own metrics.
        ``reference_track``: the reference's F0 track if the caller already has it (not extracted again)."""
        if reference_track is None:
            comparison = _compare(reference, estimate, self.settings)
        else:
            comparison = _compare_tracks(reference_track, extract_pitch(_crop(reference, estimate)[1], self.settings))
        item = comparison.metrics()
        if self.quality:
            item.update(speech_quality(reference, estimate, self.settings.sample_rate))
        self._frames.setdefault(label, []).append(comparison)
        self._items.setdefault(label, []).append(item)
        return item

    def add_tracks(self, label: str, reference: Track, estimate: Track) -> dict[str, float]:
        """Score an F0 track that is not audio (e.g. the F0 predictor's) against a reference track, pitch keys only."""
        comparison = _compare_tracks(reference, estimate)
        self._frames.setdefault(label, []).append(comparison)
        self._items.setdefault(label, []).append(comparison.metrics())
        return comparison.metrics()

    def items(self, label: str) -> list[dict[str, float]]:
        """The per-item metric dicts of ``label``, in the order added."""
        return list(self._items.get(label, []))

    def summary(self) -> dict[str, dict[str, float]]:
        """``{label: {"items", *PITCH_KEYS, *QUALITY_KEYS}}`` (quality keys only when ``quality``)."""
        out = {}
        for label, comparisons in self._frames.items():
            pooled = _FrameComparison(np.concatenate([c.cents for c in comparisons]),
                                      sum(c.differ for c in comparisons), sum(c.frames for c in comparisons))
            row = {"items": float(len(comparisons)), **pooled.metrics()}
            for key in QUALITY_KEYS if self.quality else ():
                scores = [v for it in self._items[label] if math.isfinite(v := it.get(key, math.nan))]
                row[key] = float(np.mean(scores)) if scores else math.nan
            out[label] = row
        return out

    def to_table(self) -> str:
        """``summary()`` as a markdown table, one row per label."""
        summary = self.summary()
        cols = ["items", *PITCH_KEYS, *(QUALITY_KEYS if self.quality else ())]
        lines = ["| label | " + " | ".join(cols) + " |", "|:--|" + "--:|" * len(cols)]
        for label, row in summary.items():
            cells = [f"{int(row['items'])}"] + [_format(row[c]) for c in cols[1:]]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _format(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def speaker_median_f0(references: Mapping[str, Sequence[np.ndarray]], settings: PitchSettings) -> dict[str, float]:
    """Median F0 (Hz) of each speaker over the voiced frames of all its reference waves (NaN if none is voiced)."""
    out = {}
    for speaker, waves in references.items():
        tracks = [extract_pitch(np.asarray(w, dtype=np.float64).reshape(-1), settings) for w in waves]
        voiced = np.concatenate([f[v] for f, v in tracks]) if tracks else np.zeros(0)
        out[speaker] = float(np.median(voiced)) if voiced.size else math.nan
    return out
