"""Seeding: one call seeds python, numpy and torch; derived generators for reproducible sub-streams."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def derived_rng(*keys: int) -> np.random.Generator:
    """A numpy generator that depends only on ``keys`` (e.g. (seed, epoch, index)).

    Used where a random choice must not depend on the order in which workers run.
    """
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])
