"""Tables, JSON and the confusion-matrix figure of a phone probe (see :mod:`audiolvm.eval.probe`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audiolvm.core.files import atomic_write_text
from audiolvm.data.phones import PHONES
from audiolvm.eval.plots import pyplot, save_figure

SYSTEMS = {"model": "model", "kmeans_mfcc": "k-means MFCC", "random_encoder": "random encoder"}
METRICS = {"code_phone_acc": "code→phone acc", "majority_acc": "majority", "purity": "phone purity",
           "cluster_purity": "cluster purity", "pnmi": "PNMI", "nmi": "NMI",
           "linear_z": "linear z", "linear_pre": "linear pre", "abx_within": "ABX within",
           "abx_across": "ABX across", "speaker_acc": "speaker acc", "speaker_chance": "chance"}


def _cell(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


@dataclass
class LevelProbe:
    """One level's rows (``rows[system][metric]``) and the model's test confusion counts ``[P x P]``."""

    level: int
    hop: int
    frame_rate: float
    num_codes: int
    phone_classes: int
    test_phone_classes: int
    train_frames: int
    test_frames: int
    speakers: int
    rows: dict[str, dict[str, float]]
    confusion: np.ndarray
    # the speaker probe on the frames' true phone labels: what the phone sequence alone tells about the speaker
    # (accent, speaking rate), i.e. what a perfectly phonetic code would still give away
    phone_speaker_acc: float = math.nan

    @property
    def title(self) -> str:
        return f"level {self.level} (hop {self.hop}, {self.frame_rate:g} Hz codes, K={self.num_codes})"

    def table(self) -> str:
        """Markdown table: one row per system, one column per metric."""
        lines = ["| system | " + " | ".join(METRICS.values()) + " |", "|:--" + "|--:" * len(METRICS) + "|"]
        for name, row in self.rows.items():
            lines.append(f"| {SYSTEMS[name]} | " + " | ".join(_cell(row.get(m)) for m in METRICS) + " |")
        return "\n".join(lines)

    def confusion_labels(self) -> list[int]:
        """Phone indices present in the test frames or predicted for them."""
        return np.flatnonzero(self.confusion.sum(1) + self.confusion.sum(0)).tolist()

    def to_dict(self) -> dict:
        keep = self.confusion_labels()
        info = {k: getattr(self, k) for k in ("level", "hop", "frame_rate", "num_codes", "phone_classes",
                                             "test_phone_classes", "train_frames", "test_frames", "speakers")}
        info["phone_speaker_acc"] = self.phone_speaker_acc if math.isfinite(self.phone_speaker_acc) else None
        rows = {n: {m: (v if math.isfinite(v) else None) for m, v in r.items()} for n, r in self.rows.items()}
        confusion = {"labels": [PHONES[i] for i in keep], "counts": self.confusion[np.ix_(keep, keep)].tolist()}
        return {**info, "rows": rows, "confusion_test": confusion}


@dataclass
class ProbeReport:
    """Every probed level plus run metadata (checkpoint, data, seed, split sizes)."""

    levels: list[LevelProbe]
    meta: dict = field(default_factory=dict)

    def best(self) -> LevelProbe:
        """The level with the highest model code→phone accuracy."""
        def key(lv: LevelProbe) -> float:
            acc = lv.rows["model"]["code_phone_acc"]
            return acc if math.isfinite(acc) else -1.0
        return max(self.levels, key=key)

    def to_markdown(self) -> str:
        meta = ", ".join(f"{k}: {v}" for k, v in self.meta.items())
        out = ["# Phone and speaker probes of the codes", "", meta, ""] if meta else ["# Phone and speaker probes", ""]
        for lv in self.levels:
            out += [f"## {lv.title}", "",
                    f"{lv.phone_classes} phone classes present ({lv.test_phone_classes} in test), "
                    f"{lv.train_frames} train / {lv.test_frames} test frames, {lv.speakers} speakers.", "",
                    lv.table(), ""]
            if math.isfinite(lv.phone_speaker_acc):
                out += [f"Speaker probe on the true phone labels (same windows): {lv.phone_speaker_acc:.3f}, what a "
                        "perfectly phonetic code would still give away (accent, speaking rate).", ""]
        out += ["Higher is better for the accuracies, purities, PNMI and NMI; lower is better for the ABX errors and "
                "the speaker probe (chance = 1 / speakers). `code→phone acc`: each code labelled with its most "
                "frequent train phone, scored on test frames; `majority`: the most frequent train phone; phone purity, "
                "cluster purity and PNMI (I(phone; code) / H(phone)) as in the HuBERT paper, over all frames; "
                "`linear z` / "
                "`linear pre`: logistic regression on quantized / pre-quantization features.", "",
                f"Best level by code→phone accuracy: {self.best().level} "
                f"(confusion matrix `confusion_level{self.best().level}.png`)."]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict:
        return {"meta": self.meta, "best_level": self.best().level, "levels": [lv.to_dict() for lv in self.levels]}

    def write(self, out_dir: str | Path) -> list[Path]:
        """``probe.md``, ``probe.json`` and ``confusion_level{L}.png`` (best level) in ``out_dir``."""
        out = Path(out_dir)
        best = self.best()
        title = f"{best.title}: code→phone on test frames, acc {_cell(best.rows['model']['code_phone_acc'])}"
        return [atomic_write_text(out / "probe.md", self.to_markdown()),
                atomic_write_text(out / "probe.json", json.dumps(self.to_dict(), indent=2) + "\n"),
                plot_confusion(best.confusion, out / f"confusion_level{best.level}.png", title)]


def plot_confusion(counts: np.ndarray, png: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true phone rows, predicted columns) of the phones that occur."""
    plt = pyplot()

    keep = np.flatnonzero(counts.sum(1) + counts.sum(0))
    sub = counts[np.ix_(keep, keep)].astype(np.float64)
    rows = sub / np.maximum(sub.sum(1, keepdims=True), 1)  # (P', P') each row sums to 1 (or 0)
    labels = [PHONES[i] for i in keep]
    size = 2.5 + 0.22 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted phone (code's train majority)", fontsize=8)
    ax.set_ylabel("true phone", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, png)


# ----------------------------------------------------------------------------- entry point


