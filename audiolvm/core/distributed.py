"""Thin wrappers over torch.distributed that are no-ops when running in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over all processes; returns ``tensor``."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """In-place copy of rank ``src``'s tensor to every process; returns ``tensor``."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


def all_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True only if ``flag`` is true on every process (one small all-reduce)."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([0 if flag else 1], device=device, dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item()) == 0


def all_true_tensor(flag: torch.Tensor) -> torch.Tensor:
    """A 0-dim bool tensor: ``flag`` and-ed over every process, left on its device (an all-reduce that a GPU runs
    asynchronously: no host sync)."""
    if not is_distributed():
        return flag.reshape(()).bool()
    t = flag.reshape(()).to(torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t.bool()
