"""Metric logging to CSV (long format: step, split, name, value) and the training-curves PNG."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

from audiolvm.core.files import atomic_write_bytes, atomic_write_text

FIELDS = ["step", "split", "name", "value"]


class CSVLogger:
    """Appends rows to ``path``; on resume, rows after the resumed step are dropped first."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            self._rewrite([r for r in read_rows(self.path) if int(r["step"]) <= resume_step])
        elif not self.path.exists() or resume_step is None:
            self._rewrite([])

    def _rewrite(self, rows: list[dict]) -> None:
        """Replace the file atomically (a kill during a resume's rewrite keeps the old rows)."""
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        rows = [{"step": step, "split": split, "name": k, "value": f"{v:.6g}"} for k, v in values.items()]
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=FIELDS).writerows(rows)


def read_rows(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_series(path: str | Path) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """``{name: {split: (steps, values)}}`` from a metrics CSV."""
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = defaultdict(dict)
    for row in read_rows(path):
        steps, values = series[row["name"]].setdefault(row["split"], ([], []))
        steps.append(int(row["step"]))
        values.append(float(row["value"]))
    return series


def plot_curves(csv_path: str | Path, png_path: str | Path, skip: tuple[str, ...] = ("lr",)) -> Path:
    """One panel per metric (train and valid overlaid); losses on a log axis. The other phases' losses of a step in
    phases (``loss/disc``) are drawn in the ``loss`` panel beside the model's, so generator and discriminator losses
    read off one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: v for k, v in read_series(csv_path).items() if k not in skip and not k.startswith("lr/")}
    # the losses of the other phases (loss/disc: the discriminators') share the model's loss panel
    phases = {k.split("/", 1)[1]: series.pop(k) for k in sorted(series) if k.startswith("loss/")}
    names = sorted(series, key=lambda n: (n != "loss", n))
    cols = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        lines = {(split, ""): data for split, data in series[name].items()}
        if name == "loss" and phases:
            lines = {(split, " model"): data for split, data in series[name].items()}
            lines |= {(split, f" {phase}"): data for phase, by_split in phases.items()
                      for split, data in by_split.items()}
        for (split, who), (steps, values) in sorted(lines.items()):
            ax.plot(steps, values, label=split + who, marker="o" if split != "train" else None, ms=3)
        positive = all(v > 0 for _, vals in lines.values() for v in vals)
        if positive and not any(t in name for t in ("perplexity", "used", "dead", "lr", "time/")):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    return atomic_write_bytes(png_path, buf.getvalue())  # a kill or a full disk never leaves half a PNG
