"""Training curves as server-drawn SVG line charts: each chart's geometry (axes, ticks, one polyline per series)
computed here, drawn by the template, with a ``<title>`` on every point so hovering it shows its step and value.
No JavaScript library is vendored."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from audiolvm.engine.logs import read_series

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 26, 34  # margins around the plot box, in px
MAX_POINTS = 200  # per series: a longer series is thinned evenly (its last point kept)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# drawn on a linear axis even when positive (as engine.logs.plot_curves does)
LINEAR = ("perplexity", "used", "dead", "lr", "time/")
SKIPPED = ("lr",)  # the schedule, not a result


@dataclass(frozen=True)
class Point:
    x: float  # px
    y: float  # px
    tip: str  # the hover text: series, step and value


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: tuple[Point, ...]

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of an SVG ``<polyline>``."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Tick:
    pos: float  # px along its axis
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    log: bool
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    right: int = WIDTH - RIGHT
    bottom: int = HEIGHT - BOTTOM


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) in ``[lo, hi]``."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda s: abs(math.log(s / raw)))
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis over ``[lo, hi]`` (positive): the powers of ten in it; with fewer than two of them, 1-2-5
    steps of each decade too; within a narrower range, round values evenly spaced (:func:`nice_ticks`)."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1,), (1, 2, 5)):
        ticks = [m * 10.0**d for d in decades for m in mantissas if lo <= m * 10.0**d <= hi]
        if len(ticks) >= 2:
            return ticks
    return [t for t in nice_ticks(lo, hi) if t > 0]


def _label(value: float) -> str:
    return f"{value:.3g}"


def _thinned(steps: Sequence[int], values: Sequence[float]) -> list[tuple[int, float]]:
    pairs = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    stride = math.ceil(len(pairs) / MAX_POINTS) if pairs else 1
    kept = pairs[::stride]
    return kept + ([pairs[-1]] if pairs and kept[-1] != pairs[-1] else [])


def line_chart(title: str, lines: Mapping[str, tuple[Sequence[int], Sequence[float]]]) -> Chart | None:
    """A chart of ``{label: (steps, values)}`` (non-finite values left out); None when nothing is finite. A metric
    whose values are all positive gets a log axis unless it is a count or rate (:data:`LINEAR`)."""
    data = {label: _thinned(*xy) for label, xy in lines.items()}
    data = {label: pairs for label, pairs in data.items() if pairs}
    if not data:
        return None
    steps = [s for pairs in data.values() for s, _ in pairs]
    values = [v for pairs in data.values() for _, v in pairs]
    log = min(values) > 0 and not any(t in title for t in LINEAR)
    x0, x1 = min(steps), max(steps)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    f = math.log10 if log else float
    y0, y1 = f(min(values)), f(max(values))
    pad = (y1 - y0) * 0.05 or (abs(y0) * 0.1 or 1.0)
    y0, y1 = y0 - pad, y1 + pad
    box = Chart(title, (), (), (), log)

    def px(step: float) -> float:
        return box.left + (step - x0) / (x1 - x0) * (box.right - box.left)

    def py(value: float) -> float:
        return box.bottom - (f(value) - y0) / (y1 - y0) * (box.bottom - box.top)

    series = tuple(Series(label, COLORS[i % len(COLORS)],
                          tuple(Point(px(s), py(v), f"{label}, step {s}: {v:.6g}") for s, v in pairs))
                   for i, (label, pairs) in enumerate(data.items()))
    y_values = log_ticks(10**y0, 10**y1) if log else nice_ticks(y0, y1)
    steps_shown = [s for s in nice_ticks(x0, x1) if x0 <= s <= x1 and float(s).is_integer()]  # whole steps only
    x_ticks = tuple(Tick(px(s), f"{s:g}") for s in steps_shown or sorted({min(steps), max(steps)}))
    return Chart(title, series, x_ticks, tuple(Tick(py(v), _label(v)) for v in y_values), log)


def training_charts(csv_path: Path) -> list[Chart]:
    """One chart per metric of a run's ``metrics.csv`` (train and valid overlaid; the schedule ``lr`` left out).
    The losses of the other phases of a step in phases (``loss/disc``) join the ``loss`` chart, as on
    ``curves.png``."""
    series = {k: v for k, v in read_series(csv_path).items() if k not in SKIPPED and not k.startswith("lr/")}
    phases = {k.split("/", 1)[1]: series.pop(k) for k in sorted(series) if k.startswith("loss/") and "loss" in series}
    charts = []
    for name in sorted(series, key=lambda n: (n != "loss", n)):
        lines = {split: data for split, data in series[name].items()}
        if name == "loss" and phases:
            lines = {f"{split} model": data for split, data in series[name].items()}
            lines |= {f"{split} {phase}": data for phase, by_split in phases.items()
                      for split, data in by_split.items()}
        chart = line_chart(name, dict(sorted(lines.items())))
        if chart is not None:
            charts.append(chart)
    return charts
