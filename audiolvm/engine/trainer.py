"""A model-agnostic trainer on HF Accelerate.

The trainer is given a model, a *step function* ``(model, batch) -> {"loss": ..., name: ...}``
and datasets. It knows nothing about what the model is: every returned entry is logged, the
``loss`` entry is optimised. The same script runs on a CPU, one GPU or many (``accelerate launch``).

This module holds the fit loop and its sync points; its collaborators: :mod:`~audiolvm.engine.optim` (optimizers
and schedules), :mod:`~audiolvm.engine.steps` (one optimisation step), :mod:`~audiolvm.engine.run_folder`
(checkpoints, resume, exports), :mod:`~audiolvm.engine.state` (the resumable state and checkpoint health) and
:mod:`~audiolvm.engine.validation`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from audiolvm.config import TrainConfig
from audiolvm.core.distributed import all_true
from audiolvm.core.errors import UsageError
from audiolvm.core.seed import seed_everything
from audiolvm.engine import validation
from audiolvm.engine.accelerator import make_accelerator, make_loaders
from audiolvm.engine.lock import RunLock, RunLocked
from audiolvm.engine.logs import CSVLogger, plot_curves
from audiolvm.engine.optim import apply_lr, group_settings, make_groups, make_optimizers
from audiolvm.engine.pace import Pace
from audiolvm.engine.phases import MODEL, PhasedModules, PhasedStep, WeightEMA
from audiolvm.engine.run_folder import RunFolder
from audiolvm.engine.sampling import EpochSampler
from audiolvm.engine.state import TrainerState, count_nonfinite, diverged, judge_checkpoint
from audiolvm.engine.steps import StepFn, Stepper, bare_model, trained_modules
from audiolvm.engine.threads import ThreadPolicy

log = logging.getLogger("audiolvm.engine")


@dataclass
class FitResult:
    state: TrainerState
    out_dir: Path
    last_checkpoint: Path | None
    last_train: dict[str, float]
    last_valid: dict[str, float]


class Trainer:
    """Train ``model`` by minimising ``step_fn(model, batch)["loss"]``.

    Args:
        model: any ``nn.Module``.
        step_fn: returns a dict of scalar tensors with a ``loss`` key; all entries are logged. A
            :class:`~audiolvm.engine.phases.PhasedStep` also trains its own modules (discriminators), each with its
            own optimizer (``train.groups.<name>``), one phase per module in its update order.
        train_data, valid_data: map-style datasets; a ``set_epoch(e)`` method, if present, is called
            at each epoch (random crops that depend only on (seed, epoch, index)).
        cfg: optimisation, logging and checkpoint settings.
        batch_size: per-process batch size.
        run_config: the resolved experiment config, saved beside every checkpoint.
        progress_keys: entries shown on the progress line.
    """

    def __init__(
        self,
        model: nn.Module,
        step_fn: StepFn,
        train_data: Dataset,
        cfg: TrainConfig,
        *,
        batch_size: int,
        valid_data: Dataset | None = None,
        num_workers: int = 0,
        run_config: dict | None = None,
        progress_keys: tuple[str, ...] = ("loss", "vq/perplexity"),
    ) -> None:
        self.cfg, self.run_config = cfg, run_config
        self.phased = step_fn if isinstance(step_fn, PhasedStep) else None
        if self.phased is not None and cfg.mixed_precision == "fp16":
            raise UsageError("train.mixed_precision=fp16 keeps one gradient scaler for all optimizers; a step with "
                             "several (adversarial training) needs bf16 or no")
        if self.phased is not None and cfg.compile:
            log.warning("train.compile is not applied to a step in phases (adversarial training); running eagerly")
        self.step_fn = torch.compile(step_fn) if cfg.compile and self.phased is None else step_fn  # validation too
        self.progress_keys = progress_keys
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_root = self.out_dir / "checkpoints"
        self.accelerator = make_accelerator(cfg, self.out_dir, self.phased is not None)
        seed_everything(cfg.seed)
        self.train_data, self.valid_data = train_data, valid_data
        self.sampler = EpochSampler(len(cast(Sized, train_data)), seed=cfg.seed)
        train_dl, valid_dl = make_loaders(train_data, valid_data, self.sampler, batch_size, num_workers,
                                          self.accelerator.device.type == "cuda")
        trained: nn.Module = model if self.phased is None else PhasedModules(model, self.phased)
        settings = group_settings(cfg, self.phased)  # by module, in update order
        self.order = tuple(settings)
        optimizers, schedulers = make_optimizers(trained, settings)
        prepared = self.accelerator.prepare(trained, *optimizers, *schedulers, train_dl)
        self.model, self.train_dl = prepared[0], prepared[-1]
        k = len(self.order)
        self.groups = make_groups(settings, prepared[1:1 + k], prepared[1 + k:1 + 2 * k], optimizers,
                                  cfg.mixed_precision)
        main = next(g for g in self.groups if g.name == MODEL)
        self.optimizer, self.scheduler = main.optimizer, main.scheduler
        self.valid_dl = self.accelerator.prepare(valid_dl) if valid_dl is not None else None
        self.state = TrainerState()
        self.last_train: dict[str, float] = {}
        self.pace = Pace()  # wall time and batch waits since the last log
        self.ema = (WeightEMA(bare_model(trained_modules(self.accelerator, self.model)), cfg.ema) if cfg.ema > 0
                    else None)
        self.files = RunFolder(self.accelerator, self.model, self.ema, self.out_dir, run_config, cfg.keep_last)
        self.steps = Stepper(self.accelerator, self.model, self.step_fn, self.phased is not None, self.groups,
                             self.ema)
        # train.threads: only a one-process CPU run without OMP_NUM_THREADS is ours to adapt (engine/threads.py)
        adaptive = (self.accelerator.device.type == "cpu" and self.accelerator.num_processes == 1
                    and "OMP_NUM_THREADS" not in os.environ)
        self.threads = ThreadPolicy(cfg.threads, adaptive)

    # ----------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def trained_modules(self) -> nn.Module:
        """Everything this run trains and checkpoints: the model, or :class:`PhasedModules` around it."""
        return self.files.trained_modules()

    def unwrapped_model(self) -> nn.Module:
        """The model (without the modules trained beside it)."""
        return self.files.unwrapped_model()

    def _epoch_loader(self) -> Iterable:
        """The loader for the current epoch, skipping batches already consumed before a resume.

        Accelerate's prepared loaders call ``set_epoch(<their own iteration count>)`` on the sampler
        when iterated, so the epoch is set on the loader itself, not only on our sampler.
        """
        epoch, skip = self.state.epoch, self.state.batch_in_epoch
        loader = self.accelerator.skip_first_batches(self.train_dl, skip) if skip else self.train_dl
        targets: tuple[Any, ...] = (loader, self.sampler, self.train_data, self.valid_data)
        for obj in targets:
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
        return loader

    def resume(self, path: str | Path | None = None) -> Path | None:
        """Load the given checkpoint, or else the newest one that loads; returns its folder (None: none exists).

        A checkpoint that fails to load (a truncated weights or optimizer file, a corrupt trainer_state.json) is
        skipped for the previous one, and both are named. One whose weights do not fit the model (the model
        config changed since) stops the run with the config differences: an older checkpoint would not fit
        either. The learning rate is ``train.lr`` (times the rollbacks' scale), even if the checkpoint's differs.
        """
        found = self.files.resume(path)
        if found is None:
            return None
        folder, self.state = found
        apply_lr(self.groups, self.state.lr_scale)
        return folder

    def save_checkpoint(self) -> Path:
        """Write the full training state atomically, rotate old ones, export safetensors weights."""
        return self.files.save(self.state)

    def export(self) -> Path:
        """Write ``<out>/config.json`` and ``<out>/model.safetensors`` (and the modules trained beside the model,
        ``<out>/<name>.safetensors``) of the current step: what inference loads. Main process only."""
        return self.files.export(self.state.step)

    def init_from(self, run: str | Path) -> None:
        """Warm start (``train.init_from``) from a run's exported weights: :meth:`RunFolder.init_from`."""
        self.files.init_from(run)

    def good_checkpoint(self) -> Path | None:
        """The newest checkpoint confirmed good, if it is still on disk."""
        return self.files.good_checkpoint(self.state.last_good)

    def _after_nonfinite(self, step: int) -> bool:
        """Count a skipped update (of ``step``); after ``max_nonfinite`` in a row roll back (returns True) or
        raise."""
        count_nonfinite(self.state, step)
        if self.state.nonfinite_in_row < self.cfg.max_nonfinite:
            return False
        good = self.good_checkpoint()
        if good is not None and self.state.rollbacks < self.cfg.rollbacks:
            self._rollback(good)
            return True
        raise diverged(self.state, self.cfg, step, good)

    def _rollback(self, good: Path) -> None:
        """Restart from the last good checkpoint with the learning rate scaled by ``train.rollback_lr_scale``.
        The newer checkpoints (of the diverged stretch) are deleted, so a later --resume starts from ``good``."""
        cfg, step, done = self.cfg, self.state.step, self.state.rollbacks + 1
        scale = self.state.lr_scale * cfg.rollback_lr_scale
        self.resume(good)
        self.state.rollbacks, self.state.lr_scale = done, scale
        apply_lr(self.groups, self.state.lr_scale)
        if self.is_main:
            self.files.remove_after(self.state.step)
        # the export is from the diverged stretch; the good weights replace it
        self.files.refresh_export(self.state.step)
        log.warning("training diverged at step %d: rollback %d of %d to %s, learning rate now %g (train.lr x %g)",
                    step, done, cfg.rollbacks, good, cfg.lr * scale, scale)

    def validate(self) -> dict[str, float]:
        """The means of the step function's entries over the first ``train.valid_batches`` held-out batches."""
        if self.valid_dl is None:
            return {}
        return validation.validate(self.accelerator, self.model, self.valid_dl, self.cfg.valid_batches,
                                   self.steps.evaluate)

    def _log(self, split: str, values: dict[str, float], csv: CSVLogger | None) -> None:
        if csv is not None:
            csv.log(self.state.step, split, values)
        if self.cfg.tensorboard:
            self.accelerator.log({f"{split}/{k}": v for k, v in values.items()}, step=self.state.step)

    def fit(self, resume: bool = False, stop_after: int | None = None, time_limit: float | None = None) -> FitResult:
        """Train to ``cfg.max_steps`` (or stop early after ``stop_after`` steps of this call, or at the first log
        point after ``time_limit`` seconds of it, writing a checkpoint, as an interrupted job would; ``--resume``
        continues exactly). The main process holds ``out_dir``'s lock
        (:class:`~audiolvm.engine.lock.RunLock`) meanwhile: a second run into the folder is refused."""
        lock, refused = RunLock(self.out_dir) if self.is_main else None, None
        if lock is not None:
            try:
                lock.acquire()
            except RunLocked as exc:
                refused = exc
        if not all_true(refused is None, self.accelerator.device):  # every rank stops, none waits at a barrier
            raise refused or RunLocked(f"{self.out_dir}: the main process could not take the run lock")
        try:
            return self._fit(resume, stop_after, time_limit)
        finally:
            self.threads.restore()
            if lock is not None:
                lock.release()

    def _fit(self, resume: bool, stop_after: int | None, time_limit: float | None = None) -> FitResult:
        acc, cfg = self.accelerator, self.cfg
        resumed = self.resume() if resume else None
        last_ckpt = resumed
        if resume and resumed is None and self.is_main:
            log.warning("--resume: no checkpoint under %s; starting from scratch", self.ckpt_root)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if resumed is not None:
            self.files.refresh_export(self.state.step)
        elif cfg.init_from:
            self.init_from(cfg.init_from)
        self.state.threads = self.threads.begin(self.state.threads if resumed is not None else 0)
        csv = CSVLogger(self.out_dir / "metrics.csv", self.state.step if resumed else None) if self.is_main else None
        if cfg.tensorboard:
            acc.init_trackers("tensorboard")
        start = self.state.step
        end = cfg.max_steps if stop_after is None else min(cfg.max_steps, start + stop_after)
        bar = tqdm(total=cfg.max_steps, initial=start, disable=not (self.is_main and cfg.progress),
                   dynamic_ncols=True, desc="train")
        running: dict[str, list[float]] = defaultdict(list)
        self.pace.start(self.state.step)
        records: list[dict[str, torch.Tensor]] = []  # each step's entries since the last sync point, on device
        deadline = time.perf_counter() + time_limit if time_limit is not None else None
        last_valid: dict[str, float] = {}
        try:
            while self.state.step < end:
                window: dict[str, Any] = {}
                for batch in self.pace.timed(self._epoch_loader()):
                    out = self.steps.micro_step(batch, window, self.state.step)
                    self.state.batch_in_epoch += 1
                    if not acc.sync_gradients:
                        continue
                    window = {}
                    self.state.step += 1
                    if deadline is not None and self.state.step % cfg.log_every == 0 and all_true(
                            time.perf_counter() >= deadline, acc.device):  # every rank stops at the same step
                        end = min(end, self.state.step)
                    records.append({k: v.detach().float().mean() for k, v in out.items()})
                    bar.update(1)
                    if not any(self._due(end)):
                        continue
                    rolled_back = self._flush(records, running)
                    records = []
                    if rolled_back:  # the state is the good checkpoint's
                        running.clear()
                        bar.n = self.state.step
                        bar.refresh()
                        if csv is not None:
                            csv = CSVLogger(self.out_dir / "metrics.csv", self.state.step)
                        break
                    last_ckpt, last_valid = self._periodic(running, csv, bar, last_ckpt, last_valid, end)
                    if self.state.step >= end:
                        break
                else:
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
        finally:
            bar.close()
            if cfg.tensorboard:
                acc.end_training()
            if self.is_main and (self.out_dir / "metrics.csv").exists():
                plot_curves(self.out_dir / "metrics.csv", self.out_dir / "curves.png")
        return FitResult(self.state, self.out_dir, last_ckpt, dict(self.last_train), last_valid)

    def _due(self, end: int) -> tuple[bool, bool, bool]:
        """``(log, validate, checkpoint)`` at this step; a step where any is due is a sync point, the only kind
        of step that reads values back from the device."""
        step, cfg, final = self.state.step, self.cfg, self.state.step >= end
        return (final or step % cfg.log_every == 0,
                self.valid_dl is not None and (final or step % cfg.valid_every == 0),
                final or step % cfg.ckpt_every == 0)

    def _flush(self, records: list[dict[str, torch.Tensor]], running: dict[str, list[float]]) -> bool:
        """Copy the steps' entries to the host in one transfer and replay them in order: the non-finite guard
        (:meth:`_after_nonfinite`), the judgement of a pending checkpoint, and the running means (finite steps
        only). Returns True if the guard rolled back to the last good checkpoint."""
        if not records:
            return False
        keys = sorted(set().union(*records))
        nan = torch.full((), math.nan, device=records[0]["ok"].device)
        table = torch.stack([torch.stack([r.get(k, nan) for k in keys]) for r in records]).tolist()  # one sync
        first = self.state.step - len(records) + 1
        for i, row in enumerate(table):
            values = dict(zip(keys, row, strict=True))
            if values.pop("ok") < 0.5:
                if self._after_nonfinite(first + i):
                    return True
                continue
            self.state.nonfinite_in_row = 0
            for k, v in values.items():
                running[k].append(v)
            judge_checkpoint(self.state, values["loss"], self.cfg.divergence_ratio)
        return False

    def _periodic(self, running: dict[str, list[float]], csv: CSVLogger | None, bar: tqdm, last_ckpt: Path | None,
                  last_valid: dict[str, float], end: int) -> tuple[Path | None, dict[str, float]]:
        """Logging, validation and checkpointing at a sync point (after :meth:`_flush`). No checkpoint is written
        in the middle of a run of skipped steps: its weights would be the last good step's anyway."""
        step, final = self.state.step, self.state.step >= end
        log_due, valid_due, ckpt_due = self._due(end)
        if log_due:
            self.state.threads = self.threads.at_sync_point()
            means = {k: sum(v) / len(v) for k, v in running.items() if v}
            for group in self.groups:
                means["lr" if group.name == MODEL else f"lr/{group.name}"] = group.scheduler.get_last_lr()[0]
            means |= self.pace.read(step)
            self._log("train", means, csv)
            bar.set_postfix({k: f"{means[k]:.4g}" for k in self.progress_keys if k in means})
            self.last_train = means
            running.clear()
        if valid_due:
            last_valid = self.validate()
            self._log("valid", last_valid, csv)
        if ckpt_due and (final or self.state.nonfinite_in_row == 0):
            last_ckpt = self.save_checkpoint()
        return last_ckpt, last_valid
