"""The trainer's resumable state, and the judgement of a run's health: which checkpoint is good (finite weights,
a sane loss after it), and when a run of non-finite steps means the training diverged."""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from audiolvm.config import TrainConfig
from audiolvm.core.errors import AudiolvmError

log = logging.getLogger("audiolvm.engine")


class TrainingDiverged(AudiolvmError, RuntimeError):
    """Raised after ``max_nonfinite`` consecutive non-finite losses; checkpoints are left untouched."""


@dataclass
class TrainerState:
    step: int = 0  # optimiser steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches consumed in the current epoch
    nonfinite_in_row: int = 0
    skipped_steps: int = 0
    last_good: int = -1  # step of the newest checkpoint confirmed good (-1: none yet)
    pending: int = -1  # step of a checkpoint whose first loss has not been seen yet
    recent_losses: list[float] = field(default_factory=list)  # for the running median (last 64 steps)
    lr_scale: float = 1.0  # train.lr is multiplied by this (lowered by each rollback)
    rollbacks: int = 0  # automatic rollbacks to the last good checkpoint so far (train.rollbacks)
    threads: int = 0  # intra-op threads (auto: the run's count, reused on resume; follow: the latest; 0: unknown)


def judge_checkpoint(st: TrainerState, loss: float, divergence_ratio: float) -> None:
    """The first loss computed with a pending checkpoint's weights decides whether it is good: finite and
    at most ``divergence_ratio`` times the median of the recent losses."""
    if st.pending >= 0:
        history = st.recent_losses
        bound = divergence_ratio * abs(statistics.median(history)) if history else math.inf
        if math.isfinite(loss) and loss <= bound:
            st.last_good = st.pending
        else:
            log.warning("checkpoint step %d is not a good one: the loss after it is %.4g (median of the "
                        "last %d steps %.4g, train.divergence_ratio %g)", st.pending, loss, len(history),
                        statistics.median(history) if history else math.nan, divergence_ratio)
        st.pending = -1
    if math.isfinite(loss):
        st.recent_losses = [*st.recent_losses, loss][-64:]


def count_nonfinite(st: TrainerState, step: int) -> None:
    """Count a skipped update (of ``step``) and say so."""
    st.nonfinite_in_row += 1
    st.skipped_steps += 1
    msg = f"step {step}: non-finite loss, update skipped ({st.nonfinite_in_row} in a row)"
    log.warning(msg)


def diverged(st: TrainerState, cfg: TrainConfig, step: int, good: Path | None) -> TrainingDiverged:
    """The error of a run that stops at ``step`` after ``max_nonfinite`` non-finite losses in a row: it names the
    last good checkpoint ``good`` (or says there is none) and what to change."""
    tried = f" after {st.rollbacks} rollbacks (train.rollbacks)" if st.rollbacks else ""
    clip = (f"train.grad_clip is already {cfg.grad_clip:g}" if cfg.grad_clip > 0
            else "set train.grad_clip (e.g. 1.0)")
    where = (f"the last good checkpoint is {good} (finite weights, sane loss after it); resume from it with "
             "--resume after lowering train.lr" if good is not None
             else "no good checkpoint was written, so start again")
    return TrainingDiverged(
        f"training diverged{tried}: {cfg.max_nonfinite} non-finite losses in a row at step {step}; "
        f"{where}. Lower train.lr (now {cfg.lr:g}); {clip}; or check the data."
    )
