"""The accelerator of one trainer (Accelerate's process-wide settings reset first) and the data loaders it
prepares."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import Any, cast

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState, GradientState
from torch.utils.data import DataLoader, Dataset, Sampler

from audiolvm.config import TrainConfig
from audiolvm.core.errors import UsageError


def fresh_accelerator_state() -> None:
    """Let several trainers run one after another in one process (a pipeline training a VQ-VAE and
    then a prior, or tests) with different precision / accumulation settings.

    Accelerate keeps its settings in process-wide singletons and refuses to change them. We clear
    the accelerator-level and gradient-accumulation state, and keep the process-level state (the
    process group), which is the same for every trainer of a run.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def make_accelerator(cfg: TrainConfig, out_dir: Path, phased: bool) -> Accelerator:
    """An accelerator with ``cfg``'s precision and accumulation, writing trackers under ``out_dir``; ``phased``: the
    step is in phases (whose forwards reach only some modules' parameters)."""
    fresh_accelerator_state()
    return Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with="tensorboard" if cfg.tensorboard else None,
        project_dir=str(out_dir),
        step_scheduler_with_optimizer=False,
        # VQ statistics are all-reduced inside the bottleneck; broadcasting rank 0's buffers
        # would be redundant at best (and hide a missing all-reduce at worst).
        # a phase's forward reaches only some modules' parameters (the discriminator phase not the model's)
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False,
                                                      find_unused_parameters=phased)],
        # batches go to the GPU from pinned memory without blocking the host (a blocking copy is a sync)
        dataloader_config=DataLoaderConfiguration(non_blocking=True),
    )


def make_loaders(train_data: Dataset, valid_data: Dataset | None, sampler: Sampler, batch_size: int,
                 num_workers: int, pin_memory: bool) -> tuple[DataLoader, DataLoader | None]:
    """The training loader (drawing from ``sampler``, whole batches only) and the validation loader (None without
    validation data)."""
    loader_kw: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers, "drop_last": True,
                 "pin_memory": pin_memory}
    # own generators: creating a loader iterator must not consume the global RNG (exact resume)
    train_dl = DataLoader(train_data, sampler=sampler, generator=torch.Generator(), **loader_kw)
    if len(train_dl) == 0:
        raise UsageError(
            f"training set has {len(cast(Sized, train_data))} items, fewer than one batch of {batch_size}; "
            "lower data.batch_size or add data"
        )
    valid_dl = None
    if valid_data is not None and len(cast(Sized, valid_data)) > 0:
        valid_dl = DataLoader(valid_data, shuffle=False, generator=torch.Generator(), **{
            **loader_kw, "drop_last": False})
    return train_dl, valid_dl
