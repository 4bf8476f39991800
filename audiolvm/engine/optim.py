"""Optimizers and learning-rate schedules: one optimizer group per trained module (the model, and in a step in
phases each module trained beside it), their settings, and the base rate a resume or a rollback applies."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from audiolvm.config import TrainConfig
from audiolvm.core.errors import UsageError
from audiolvm.engine.phases import MODEL, PhasedModules, PhasedStep, group_config, update_order

log = logging.getLogger("audiolvm.engine")


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
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                 weight_decay=cfg.weight_decay, fused=fused or None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, fused=fused or None)
    raise UsageError(f"train.optimizer={cfg.optimizer!r} is unknown; use 'adamw' or 'sgd'")


def group_settings(cfg: TrainConfig, phased: PhasedStep | None) -> dict[str, TrainConfig]:
    """Each trained module's optimizer settings, in update order: the model alone for a plain step function."""
    order = (MODEL,) if phased is None else update_order(phased, cfg)
    settings = {name: group_config(cfg, name) for name in order}
    unknown = sorted(set(cfg.groups) - set(order))
    if unknown and phased is None:  # e.g. a GAN config with its discriminators switched off
        log.warning("train.groups %s are not used: this run trains no module besides the model", unknown)
    elif unknown:
        raise UsageError(f"train.groups names {unknown}, which this run does not train; its modules: "
                         f"{[n for n in order if n != MODEL]}")
    return settings


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    """The learning-rate multiplier of a group as a plain function (a scheduler saves no state for a function)."""
    return lambda s: lr_multiplier(s, cfg)


def make_optimizers(trained: nn.Module, settings: dict[str, TrainConfig]
                    ) -> tuple[list[torch.optim.Optimizer], list[torch.optim.lr_scheduler.LambdaLR]]:
    """One optimizer per group of ``settings`` over its module of ``trained`` (the model, or
    :class:`PhasedModules` around it), then their schedules."""
    optimizers = [make_optimizer(trained.group(n) if isinstance(trained, PhasedModules) else trained, c)
                  for n, c in settings.items()]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, _schedule(c))
                  for c, o in zip(settings.values(), optimizers, strict=True)]
    return optimizers, schedulers


def make_groups(settings: dict[str, TrainConfig], optimizers: Sequence[Any], schedulers: Sequence[Any],
                raw: Sequence[torch.optim.Optimizer], mixed_precision: str) -> list[OptimGroup]:
    """The groups of the prepared ``optimizers`` and ``schedulers`` (``raw``: the same optimizers unprepared)."""
    # the non-finite guard skips updates on a device flag when the optimizer's fused kernel reads one
    # (fp16's gradient scaler sets that flag itself, so it keeps the host-side branch)
    return [OptimGroup(n, settings[n], opt, sched, inner, bool(inner.defaults.get("fused"))
                       and mixed_precision != "fp16")
            for n, opt, sched, inner in zip(settings, optimizers, schedulers, raw, strict=True)]


def apply_lr(groups: Sequence[OptimGroup], lr_scale: float) -> None:
    """Set each optimizer's base learning rate to its ``lr`` (``train.lr``, or ``train.groups.<name>.lr``)
    times ``lr_scale``; a checkpoint restores its own (the config given on --resume may have lowered it,
    a rollback scales it). Unchanged rates are left untouched."""
    for group in groups:
        sched = group.scheduler.scheduler  # the LambdaLR inside accelerate's wrapper
        base = group.cfg.lr * lr_scale
        if all(b == base for b in sched.base_lrs):
            continue
        log.info("learning rate of %s: base %g (lr %g x %g), the checkpoint had %g", group.name, base,
                 group.cfg.lr, lr_scale, sched.base_lrs[0])
        sched.base_lrs = [base] * len(sched.base_lrs)
        sched._last_lr = [base * lmbda(sched.last_epoch) for lmbda in sched.lr_lambdas]  # as LambdaLR computes
        for param_group, lr in zip(group.optimizer.param_groups, sched._last_lr, strict=True):
            param_group["lr"] = lr
