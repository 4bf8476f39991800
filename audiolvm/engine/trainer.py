"""A model-agnostic trainer on HF Accelerate.

The trainer is given a model, a *step function* ``(model, batch) -> {"loss": ..., name: ...}``
and datasets. It knows nothing about what the model is: every returned entry is logged, the
``loss`` entry is optimised. The same script runs on a CPU, one GPU or many (``accelerate launch``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState, GradientState
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from audiolvm.config import TrainConfig
from audiolvm.core.distributed import all_true, all_true_tensor
from audiolvm.core.errors import AudiolvmError, MissingFileError, UsageError
from audiolvm.core.files import atomic_write_json, read_json
from audiolvm.core.seed import seed_everything
from audiolvm.engine import checkpoint as ckpt
from audiolvm.engine.lock import RunLock, RunLocked
from audiolvm.engine.logs import CSVLogger, plot_curves
from audiolvm.engine.phases import (
    MODEL,
    PhasedModules,
    PhasedStep,
    WeightEMA,
    group_config,
    phase_entries,
    update_order,
)
from audiolvm.engine.sampling import EpochSampler
from audiolvm.engine.threads import ThreadPolicy

log = logging.getLogger("audiolvm.engine")
EMA_FILE = "ema.safetensors"  #: a checkpoint's weight average (train.ema)
StepFn = Callable[[nn.Module, Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


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


@dataclass
class OptimGroup:
    """One trained module's optimizer: its settings (``train`` with ``train.groups.<name>`` over it), the prepared
    optimizer and scheduler, and the raw optimizer (whose ``found_inf`` skips an update on a device flag)."""

    name: str
    cfg: TrainConfig
    optimizer: Any
    scheduler: Any
    inner: torch.optim.Optimizer
    skip_on_device: bool


@dataclass
class FitResult:
    state: TrainerState
    out_dir: Path
    last_checkpoint: Path | None
    last_train: dict[str, float]
    last_valid: dict[str, float]


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then constant or cosine decay to ``min_lr_ratio`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule != "cosine":
        raise UsageError(f"train.schedule={cfg.schedule!r} is unknown; use 'cosine' or 'constant'")
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (``train.betas``, 0.9 / 0.99 by default) or SGD with momentum 0.9. Both use the fused kernel when every
    parameter is a floating tensor on CPU or CUDA (one kernel for all tensors instead of a loop over them: about 3x
    faster optimizer steps on the small image models, see BENCHMARKS.md); the maths is the same. A fused
    kernel can also skip an update on a device-side flag (``found_inf``), which the trainer uses so that the
    non-finite guard needs no host sync."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    if cfg.optimizer == "adamw":
        if len(cfg.betas) != 2:
            raise UsageError(f"train.betas={list(cfg.betas)} must be two numbers, e.g. [0.9, 0.99]")
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                                 fused=fused or None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, fused=fused or None)
    raise UsageError(f"train.optimizer={cfg.optimizer!r} is unknown; use 'adamw' or 'sgd'")


def _fresh_accelerator_state() -> None:
    """Let several trainers run one after another in one process (a pipeline training a VQ-VAE and
    then a prior, or tests) with different precision / accumulation settings.

    Accelerate keeps its settings in process-wide singletons and refuses to change them. We clear
    the accelerator-level and gradient-accumulation state, and keep the process-level state (the
    process group), which is the same for every trainer of a run.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


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
        _fresh_accelerator_state()
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.grad_accum,
            log_with="tensorboard" if cfg.tensorboard else None,
            project_dir=str(self.out_dir),
            step_scheduler_with_optimizer=False,
            # VQ statistics are all-reduced inside the bottleneck; broadcasting rank 0's buffers
            # would be redundant at best (and hide a missing all-reduce at worst).
            # a phase's forward reaches only some modules' parameters (the discriminator phase not the model's)
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False,
                                                          find_unused_parameters=self.phased is not None)],
            # batches go to the GPU from pinned memory without blocking the host (a blocking copy is a sync)
            dataloader_config=DataLoaderConfiguration(non_blocking=True),
        )
        seed_everything(cfg.seed)
        self.train_data, self.valid_data = train_data, valid_data
        self.sampler = EpochSampler(len(train_data), seed=cfg.seed)
        loader_kw = {"batch_size": batch_size, "num_workers": num_workers, "drop_last": True,
                     "pin_memory": self.accelerator.device.type == "cuda"}
        # own generators: creating a loader iterator must not consume the global RNG (exact resume)
        train_dl = DataLoader(train_data, sampler=self.sampler, generator=torch.Generator(), **loader_kw)
        if len(train_dl) == 0:
            raise UsageError(
                f"training set has {len(train_data)} items, fewer than one batch of {batch_size}; "
                "lower data.batch_size or add data"
            )
        valid_dl = None
        if valid_data is not None and len(valid_data) > 0:
            valid_dl = DataLoader(valid_data, shuffle=False, generator=torch.Generator(), **{
                **loader_kw, "drop_last": False})
        trained: nn.Module = model if self.phased is None else PhasedModules(model, self.phased)
        self.order = (MODEL,) if self.phased is None else update_order(self.phased, cfg)
        settings = {name: group_config(cfg, name) for name in self.order}
        unknown = sorted(set(cfg.groups) - set(self.order))
        if unknown and self.phased is None:  # e.g. a GAN config with its discriminators switched off
            log.warning("train.groups %s are not used: this run trains no module besides the model", unknown)
        elif unknown:
            raise UsageError(f"train.groups names {unknown}, which this run does not train; its modules: "
                             f"{[n for n in self.order if n != MODEL]}")
        optimizers = [make_optimizer(trained if self.phased is None else trained.group(n), settings[n])
                      for n in self.order]
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda s, c=settings[n]: lr_multiplier(s, c))
                      for n, o in zip(self.order, optimizers, strict=True)]
        prepared = self.accelerator.prepare(trained, *optimizers, *schedulers, train_dl)
        self.model, self.train_dl = prepared[0], prepared[-1]
        k = len(self.order)
        # the non-finite guard skips updates on a device flag when the optimizer's fused kernel reads one
        # (fp16's gradient scaler sets that flag itself, so it keeps the host-side branch)
        self.groups = [OptimGroup(n, settings[n], opt, sched, raw, bool(raw.defaults.get("fused"))
                                  and cfg.mixed_precision != "fp16")
                       for n, opt, sched, raw in zip(self.order, prepared[1:1 + k], prepared[1 + k:1 + 2 * k],
                                                     optimizers, strict=True)]
        main = next(g for g in self.groups if g.name == MODEL)
        self.optimizer, self.scheduler = main.optimizer, main.scheduler
        self.valid_dl = self.accelerator.prepare(valid_dl) if valid_dl is not None else None
        self.state = TrainerState()
        self.last_train: dict[str, float] = {}
        self._clock, self._waited = (time.perf_counter(), 0), 0.0  # wall time and batch waits since the last log
        self.ema = WeightEMA(self.unwrapped_model(), cfg.ema) if cfg.ema > 0 else None
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
        return self.accelerator.unwrap_model(self.model)

    def unwrapped_model(self) -> nn.Module:
        """The model (without the modules trained beside it)."""
        trained = self.trained_modules()
        return trained.model if isinstance(trained, PhasedModules) else trained

    def _timed(self, loader: Iterable) -> Iterator:
        """Iterate ``loader``, adding the seconds spent waiting for each batch to ``self._waited``."""
        batches = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self._waited += time.perf_counter() - t0
            yield batch

    def _epoch_loader(self) -> Iterable:
        """The loader for the current epoch, skipping batches already consumed before a resume.

        Accelerate's prepared loaders call ``set_epoch(<their own iteration count>)`` on the sampler
        when iterated, so the epoch is set on the loader itself, not only on our sampler.
        """
        epoch, skip = self.state.epoch, self.state.batch_in_epoch
        loader = self.accelerator.skip_first_batches(self.train_dl, skip) if skip else self.train_dl
        for obj in (loader, self.sampler, self.train_data, self.valid_data):
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
        candidates = [Path(path)] if path else ckpt.list_checkpoints(self.ckpt_root)[::-1]
        failed: list[str] = []
        for folder in candidates:
            self._check_fits(folder)
            try:
                self._load(folder)
            except Exception as exc:  # noqa: BLE001 - whatever part is unreadable, the checkpoint is unusable
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                failed.append(f"{folder.name} ({reason})")
                log.warning("%s cannot be loaded (%s); trying the checkpoint before it", folder, reason)
                continue
            if failed:
                log.warning("resumed from %s instead of the newer %s", folder.name,
                            ", ".join(f.split(" (")[0] for f in failed))
            self._apply_lr()
            return folder
        if failed:
            raise UsageError(f"{self.ckpt_root}: no checkpoint loads ({'; '.join(failed)}); train without --resume "
                             "into a new train.out_dir")
        return None

    def _load(self, folder: Path) -> None:
        state_file = folder / "trainer_state.json"
        if not state_file.is_file():
            raise MissingFileError(f"{folder}: not a checkpoint folder (no trainer_state.json)")
        raw = read_json(state_file)
        try:
            state = TrainerState(**raw)
        except TypeError as exc:
            raise UsageError(f"{state_file}: not a trainer state ({exc})") from exc
        self.accelerator.load_state(str(folder))
        if self.ema is not None:
            if (folder / EMA_FILE).is_file():
                self.ema.load(ckpt.load_weights(folder / EMA_FILE))
            else:  # a checkpoint of a run without train.ema: the average starts from its weights
                log.warning("%s has no %s; the weight average (train.ema) starts from its weights", folder, EMA_FILE)
                self.ema.load(self.unwrapped_model().state_dict())
        self.state = state

    def _check_fits(self, folder: Path) -> None:
        """Raise ValueError if the checkpoint's weights have other shapes than the model's (a changed config)."""
        weights = folder / "model.safetensors"
        try:
            wrong = ckpt.shape_mismatches(ckpt.tensor_shapes(weights), self.trained_modules())
        except (ValueError, OSError):
            return  # missing or unreadable: loading fails and the checkpoint is skipped
        if not wrong:
            return
        changed = []
        if self.run_config is not None and (folder / "config.json").is_file():
            try:
                changed = [d for d in ckpt.config_differences(read_json(folder / "config.json"), self.run_config)
                           if not d.startswith("train.")]
            except ValueError:
                pass
        why = f"; the config differs in {', '.join(changed[:4])}" if changed else ""
        raise UsageError(f"{folder}: {len(wrong)} tensors of the checkpoint do not fit the model built now (e.g. "
                         f"{wrong[0]}){why}. Resume with the run's config ({folder / 'config.json'}), or train the new "
                         "model into another train.out_dir")

    def _apply_lr(self) -> None:
        """Set each optimizer's base learning rate to its ``lr`` (``train.lr``, or ``train.groups.<name>.lr``)
        times ``state.lr_scale``; a checkpoint restores its own (the config given on --resume may have lowered it,
        a rollback scales it). Unchanged rates are left untouched."""
        for group in self.groups:
            sched = group.scheduler.scheduler  # the LambdaLR inside accelerate's wrapper
            base = group.cfg.lr * self.state.lr_scale
            if all(b == base for b in sched.base_lrs):
                continue
            log.info("learning rate of %s: base %g (lr %g x %g), the checkpoint had %g", group.name, base,
                     group.cfg.lr, self.state.lr_scale, sched.base_lrs[0])
            sched.base_lrs = [base] * len(sched.base_lrs)
            sched._last_lr = [base * lmbda(sched.last_epoch) for lmbda in sched.lr_lambdas]  # as LambdaLR computes
            for param_group, lr in zip(group.optimizer.param_groups, sched._last_lr, strict=True):
                param_group["lr"] = lr

    def save_checkpoint(self) -> Path:
        """Write the full training state atomically, rotate old ones, export safetensors weights."""
        acc, final = self.accelerator, ckpt.step_dir(self.ckpt_root, self.state.step)
        tmp = final.with_name(f".{final.name}.tmp")
        if self.is_main:
            self.ckpt_root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        params = list(self.trained_modules().parameters())
        finite = bool(torch.stack([torch.isfinite(p).all() for p in params]).all()) if params else True
        self.state.pending = self.state.step if finite else -1  # judged by the next loss (_judge_checkpoint)
        if self.is_main:
            if self.ema is not None:
                ckpt.save_weights(self.ema.shadow, tmp / EMA_FILE, self.state.step)
            atomic_write_json(tmp / "trainer_state.json", dataclasses.asdict(self.state))
            if self.run_config is not None:
                atomic_write_json(tmp / "config.json", self.run_config)
            # the export comes first: a checkpoint that claims step N is never published beside older weights
            self.export()
            ckpt.publish_dir(tmp, final)
            ckpt.rotate(self.ckpt_root, self.cfg.keep_last, keep=self.state.last_good)
        acc.wait_for_everyone()
        return final

    def export(self) -> Path:
        """Write ``<out>/config.json`` and ``<out>/model.safetensors`` (the weights of the current step, which
        its metadata names; their moving average with ``train.ema``): what inference loads. Modules trained beside
        the model go beside it, ``<out>/<name>.safetensors`` (a discriminator, for fine-tuning later with
        ``train.init_from``); the model's file is written last. Main process only."""
        if self.run_config is not None:
            atomic_write_json(self.out_dir / "config.json", self.run_config)
        trained = self.trained_modules()
        if isinstance(trained, PhasedModules):
            for name, module in trained.aux.items():
                ckpt.save_weights(module.state_dict(), self.out_dir / f"{name}.safetensors", self.state.step)
        weights = self.ema.shadow if self.ema is not None else self.unwrapped_model().state_dict()
        return ckpt.save_weights(weights, self.out_dir / "model.safetensors", self.state.step)

    def init_from(self, run: str | Path) -> None:
        """Warm start (``train.init_from``): load a run's ``model.safetensors`` into the model, strictly (every
        tensor present, same shapes), and the saved weights of each module trained beside it where the run has
        them (``<name>.safetensors``); a module without a file starts fresh."""
        run = Path(run)
        weights = run / "model.safetensors" if run.is_dir() else run
        fix = (f"give train.init_from a run folder written by 'audiolvm train' for the same model config "
               f"(it has {run / 'config.json'})")
        if not weights.is_file():
            raise UsageError(f"train.init_from={str(run)!r}: {weights} not found; {fix}")
        targets: dict[str, tuple[nn.Module, Path]] = {MODEL: (self.unwrapped_model(), weights)}
        trained = self.trained_modules()
        if isinstance(trained, PhasedModules):
            targets |= {name: (m, weights.with_name(f"{name}.safetensors")) for name, m in trained.aux.items()}
        for name, (module, path) in targets.items():
            if name != MODEL and not path.is_file():
                log.info("init_from: %s has no %s; %s starts fresh", run, path.name, name)
                continue
            ckpt.load_strict(module, ckpt.load_weights(path), path, fix)
            log.info("init_from: %s loaded from %s", name, path)
        if self.ema is not None:
            self.ema.load(self.unwrapped_model().state_dict())

    def _refresh_export(self) -> None:
        """After a resume: if the exported weights are missing, unreadable or from another step than the
        checkpoint (a run killed between checkpoint and export), export the checkpoint's weights again."""
        path = self.out_dir / "model.safetensors"
        found = ckpt.exported_step(path)
        if self.is_main and found != self.state.step:
            what = "missing or unreadable" if found is None else f"from step {found}"
            log.warning("%s is %s; re-exporting the weights of the resumed checkpoint (step %d)", path, what,
                        self.state.step)
            self.export()
        self.accelerator.wait_for_everyone()

    # ----------------------------------------------------------------------------------------
    def _micro_step(self, batch: Mapping[str, torch.Tensor], window: dict) -> dict[str, torch.Tensor]:
        """Forward/backward one micro-batch inside the accumulation context. Returns the step function's entries
        plus ``"ok"``: a 0-dim device tensor, 1 when every loss of the accumulation window was finite on every
        process. A window that is not ok makes no update: a fused optimizer skips it on the device flag itself
        (``found_inf``, no host sync); any other optimizer reads the flag (one sync). It still counts as a step
        (as a step skipped by AMP's gradient scaler does), and the scheduler moves on."""
        acc = self.accelerator
        if self.phased is not None:
            return self._phased_step(batch, window)
        with acc.accumulate(self.model):
            out = dict(self.step_fn(self.model, batch))
            window["ok"] = self._backward(out["loss"], window.get("ok"))
            if acc.sync_gradients:
                out |= self._update(self.groups[0], self.model.parameters(), window["ok"])
            out["ok"] = window["ok"]
        return out

    def _backward(self, loss: torch.Tensor, ok: torch.Tensor | None) -> torch.Tensor:
        """Backward ``loss``; returns ``ok`` and-ed with "the loss is finite on every process" (a device tensor).
        A non-finite loss poisons the window's gradients, and the update is skipped."""
        finite = all_true_tensor(torch.isfinite(loss.detach()).all())
        self.accelerator.backward(loss)
        return finite if ok is None else ok & finite

    def _update(self, group: OptimGroup, params: Iterable[nn.Parameter], ok: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clip, step (skipped when not ``ok``), schedule and zero one optimizer; returns ``grad_norm`` if clipped."""
        out = {}
        if group.cfg.grad_clip > 0:
            out["grad_norm"] = self.accelerator.clip_grad_norm_(params, group.cfg.grad_clip)
        if group.skip_on_device:
            group.inner.found_inf = (~ok).float()
            group.optimizer.step()
        elif bool(ok):
            group.optimizer.step()
        group.scheduler.step()
        group.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None and group.name == MODEL:
            self.ema.update(self.unwrapped_model(), self.state.step)
        return out

    def _freeze_others(self, trained: nn.Module, phase: str) -> list[nn.Parameter]:
        """In a one-process run, switch gradients off for the other trained modules (not the model, whose graph a
        phase may build for the next one) during ``phase``, so that backward skips weight gradients that would be
        dropped (the discriminators' in the model phase); returns the parameters to switch back on. Under DDP the
        set of parameters with gradients is fixed when it wraps the module, so nothing is frozen there."""
        if self.accelerator.num_processes > 1 or not isinstance(trained, PhasedModules):
            return []
        frozen = [p for name, module in trained.aux.items() if name != phase for p in module.parameters()
                  if p.requires_grad]
        for param in frozen:
            param.requires_grad_(False)
        return frozen

    def _phased_step(self, batch: Mapping[str, torch.Tensor], window: dict) -> dict[str, torch.Tensor]:
        """A step in phases (:class:`~audiolvm.engine.phases.PhasedStep`). The window's micro-batches are held
        until the last arrives; then each phase in update order runs every micro-batch forward and backward (each
        with its own ``carry``, kept across the phases, so the window's graphs are held) and steps its module's
        optimizer. Gradients a phase leaves in other modules are cleared before the next phase. Each phase's update
        is skipped on its own non-finite flag; the step's ``ok`` is all of them."""
        acc = self.accelerator
        with acc.accumulate(self.model):
            window.setdefault("batches", []).append(batch)
            if not acc.sync_gradients:
                return {}
            batches = window.pop("batches")
            carries: list[dict] = [{} for _ in batches]
            out: dict[str, torch.Tensor] = {}
            step_ok = None
            trained = self.trained_modules()
            for group in self.groups:
                trained.zero_grad(set_to_none=True)
                ok = None
                frozen = self._freeze_others(trained, group.name)
                try:
                    for j, (micro, carry) in enumerate(zip(batches, carries, strict=True)):
                        # DDP all-reduces at the window's last backward only
                        with acc.no_sync(self.model) if j < len(batches) - 1 else nullcontext():
                            entries = dict(self.model(micro, phase=group.name, carry=carry))
                            ok = self._backward(entries["loss"], ok)
                finally:
                    for param in frozen:
                        param.requires_grad_(True)
                entries |= self._update(group, trained.group(group.name).parameters(), ok)
                out |= phase_entries(entries, group.name)
                step_ok = ok if step_ok is None else step_ok & ok
            trained.zero_grad(set_to_none=True)
            out["ok"] = step_ok
        return out

    def _judge_checkpoint(self, loss: float) -> None:
        """The first loss computed with a pending checkpoint's weights decides whether it is good: finite and
        at most ``divergence_ratio`` times the median of the recent losses."""
        st = self.state
        if st.pending >= 0:
            history = st.recent_losses
            bound = self.cfg.divergence_ratio * abs(statistics.median(history)) if history else math.inf
            if math.isfinite(loss) and loss <= bound:
                st.last_good = st.pending
            else:
                log.warning("checkpoint step %d is not a good one: the loss after it is %.4g (median of the "
                            "last %d steps %.4g, train.divergence_ratio %g)", st.pending, loss, len(history),
                            statistics.median(history) if history else math.nan, self.cfg.divergence_ratio)
            st.pending = -1
        if math.isfinite(loss):
            st.recent_losses = [*st.recent_losses, loss][-64:]

    def good_checkpoint(self) -> Path | None:
        """The newest checkpoint confirmed good, if it is still on disk."""
        path = ckpt.step_dir(self.ckpt_root, self.state.last_good) if self.state.last_good >= 0 else None
        return path if path is not None and path.is_dir() else None

    def _after_nonfinite(self, step: int) -> bool:
        """Count a skipped update (of ``step``); after ``max_nonfinite`` in a row roll back (returns True) or
        raise."""
        self.state.nonfinite_in_row += 1
        self.state.skipped_steps += 1
        msg = f"step {step}: non-finite loss, update skipped ({self.state.nonfinite_in_row} in a row)"
        log.warning(msg)
        if self.state.nonfinite_in_row >= self.cfg.max_nonfinite:
            good, cfg = self.good_checkpoint(), self.cfg
            if good is not None and self.state.rollbacks < cfg.rollbacks:
                self._rollback(good)
                return True
            tried = f" after {self.state.rollbacks} rollbacks (train.rollbacks)" if self.state.rollbacks else ""
            clip = (f"train.grad_clip is already {cfg.grad_clip:g}" if cfg.grad_clip > 0
                    else "set train.grad_clip (e.g. 1.0)")
            where = (f"the last good checkpoint is {good} (finite weights, sane loss after it); resume from it with "
                     "--resume after lowering train.lr" if good is not None
                     else "no good checkpoint was written, so start again")
            raise TrainingDiverged(
                f"training diverged{tried}: {cfg.max_nonfinite} non-finite losses in a row at step {step}; "
                f"{where}. Lower train.lr (now {cfg.lr:g}); {clip}; or check the data."
            )
        return False

    def _rollback(self, good: Path) -> None:
        """Restart from the last good checkpoint with the learning rate scaled by ``train.rollback_lr_scale``.
        The newer checkpoints (of the diverged stretch) are deleted, so a later --resume starts from ``good``."""
        cfg, step, done = self.cfg, self.state.step, self.state.rollbacks + 1
        scale = self.state.lr_scale * cfg.rollback_lr_scale
        self.resume(good)
        self.state.rollbacks, self.state.lr_scale = done, scale
        self._apply_lr()
        if self.is_main:
            for path in ckpt.list_checkpoints(self.ckpt_root):
                if int(ckpt.STEP_DIR.match(path.name).group(1)) > self.state.step:  # type: ignore[union-attr]
                    shutil.rmtree(path, ignore_errors=True)
        self._refresh_export()  # the export is from the diverged stretch; the good weights replace it
        log.warning("training diverged at step %d: rollback %d of %d to %s, learning rate now %g (train.lr x %g)",
                    step, done, cfg.rollbacks, good, cfg.lr * scale, scale)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.valid_dl is None:
            return {}
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for i, batch in enumerate(self.valid_dl):
            if i >= self.cfg.valid_batches:
                break
            out = self._evaluate(batch)
            for k, v in out.items():
                value = self.accelerator.gather_for_metrics(v.detach().float().reshape(1)).mean()
                sums[k] = sums[k] + value if k in sums else value
            n += 1
        self.model.train()
        keys = sorted(sums)
        totals = torch.stack([sums[k] for k in keys]).tolist() if keys else []  # one copy to the host
        return {k: v / max(n, 1) for k, v in zip(keys, totals, strict=True)}

    def _evaluate(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The step function's entries for a held-out batch (every phase, in update order, for a phased step)."""
        if self.phased is None:
            return dict(self.step_fn(self.model, batch))
        out, carry = {}, {}
        for name in self.order:
            out |= phase_entries(self.model(batch, phase=name, carry=carry), name)
        return out

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
            self._refresh_export()
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
        self._clock, self._waited = (time.perf_counter(), self.state.step), 0.0  # for _throughput
        records: list[dict[str, torch.Tensor]] = []  # each step's entries since the last sync point, on device
        deadline = time.perf_counter() + time_limit if time_limit is not None else None
        last_valid: dict[str, float] = {}
        try:
            while self.state.step < end:
                window: dict = {}
                for batch in self._timed(self._epoch_loader()):
                    out = self._micro_step(batch, window)
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

    def _throughput(self, step: int) -> dict[str, float]:
        """``time/steps_per_s`` and ``time/data_wait`` (the share of wall time spent waiting for batches: near 1
        means the loader is the bottleneck) since the previous log point. Read at a sync point, so the device's
        work is inside the wall time."""
        now = time.perf_counter()
        wall, steps = now - self._clock[0], step - self._clock[1]
        out = {}
        if wall > 0 and steps > 0:
            out = {"time/steps_per_s": steps / wall, "time/data_wait": self._waited / wall,
                   "time/threads": float(torch.get_num_threads())}
        self._clock, self._waited = (now, step), 0.0
        return out

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
            self._judge_checkpoint(values["loss"])
        return False

    def _periodic(self, running, csv, bar, last_ckpt, last_valid, end):  # noqa: ANN001, ANN202
        """Logging, validation and checkpointing at a sync point (after :meth:`_flush`). No checkpoint is written
        in the middle of a run of skipped steps: its weights would be the last good step's anyway."""
        step, final = self.state.step, self.state.step >= end
        log_due, valid_due, ckpt_due = self._due(end)
        if log_due:
            self.state.threads = self.threads.at_sync_point()
            means = {k: sum(v) / len(v) for k, v in running.items() if v}
            for group in self.groups:
                means["lr" if group.name == MODEL else f"lr/{group.name}"] = group.scheduler.get_last_lr()[0]
            means |= self._throughput(step)
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
