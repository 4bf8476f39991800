"""Semi-supervised views of labelled data sets: keep the labels of a seeded, class-stratified fraction
of the items and replace the others by -1 (the convention of :class:`audiolvm.models.m2.M2`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from audiolvm.core.errors import UsageError


def labelled_mask(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Bool ``[N]``: ``round(fraction * n_c)`` items of every class c (at least one) keep their label,
    drawn by ``default_rng(seed)``, so the choice depends only on ``(labels, fraction, seed)``."""
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"labelled_mask: fraction={fraction}; pass a value in [0, 1]")
    labels = np.asarray(labels, dtype=np.int64)
    if fraction > 0 and (labels < 0).any():
        raise UsageError("labelled_mask: the data set has unlabelled items (label -1); a labelled fraction "
                         "needs a fully labelled set")
    mask = np.zeros(len(labels), dtype=bool)
    if fraction == 0:
        return mask
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keep = max(1, int(round(fraction * len(members))))
        mask[rng.choice(members, size=keep, replace=False)] = True
    return mask


class PartlyLabelled(Dataset):
    """``dataset[i]`` with ``label`` set to -1 unless ``mask[i]``; forwards ``set_epoch``."""

    def __init__(self, dataset: Dataset, mask: np.ndarray) -> None:
        if len(mask) != len(dataset):  # type: ignore[arg-type]
            raise UsageError(f"PartlyLabelled: mask of {len(mask)} for {len(dataset)} items")  # type: ignore[arg-type]
        self.dataset, self.mask = dataset, np.asarray(mask, dtype=bool)

    def __len__(self) -> int:
        return len(self.mask)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[i])
        if not self.mask[i]:
            item["label"] = -1
        return item
