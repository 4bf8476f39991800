"""Matplotlib (Agg) helpers shared by the lab's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily: the lab runs headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, png: str | Path) -> Path:
    """Write ``fig`` to ``png`` (creating its folder) and close it."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    pyplot().close(fig)
    return png
