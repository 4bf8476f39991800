"""Checkpoint files: atomic writes, safetensors weights, rotation of the last N, and discovery.

Layout of a run folder::

    <out>/checkpoints/step_000500/   full training state (accelerate ``save_state``)
                                     + trainer_state.json + config.json
    <out>/model.safetensors          exported weights of the latest checkpoint (safetensors; its metadata
                                     names the step; written before the checkpoint that claims the step)
    <out>/config.json                the resolved config that built the model
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from audiolvm.core.errors import MissingFileError, UsageError

STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step_{step:06d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first (temporary folders are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(root: str | Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def publish_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place with a rename (atomic on one filesystem)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def rotate(root: str | Path, keep_last: int, keep: int = -1) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and the one of step ``keep`` (the last good one);
    returns the deleted folders."""
    ckpts = list_checkpoints(root)
    doomed = [p for p in ckpts[:-keep_last] if p.name != step_dir(root, keep).name] if keep_last > 0 else []
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def save_weights(state_dict: dict[str, torch.Tensor], path: str | Path, step: int | None = None) -> Path:
    """Save tensors as safetensors atomically; ``step`` (the training step they are from) goes into the
    file's metadata, so a stale export can be recognised (:func:`exported_step`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    metadata = {"format": "pt"} | ({"step": str(step)} if step is not None else {})
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def exported_step(path: str | Path) -> int | None:
    """The training step recorded in an exported weights file; None if the file is missing, unreadable
    (truncated) or has no step."""
    try:
        with safe_open(str(path), framework="pt") as f:
            step = (f.metadata() or {}).get("step")
    except Exception:  # noqa: BLE001 - a missing, truncated or foreign file is simply not an up-to-date export
        return None
    return int(step) if step is not None and step.isdigit() else None


#: what to do about an unreadable export of a run folder
REEXPORT_FIX = ("if it is a run's model.safetensors, 'audiolvm train <its config> train.out_dir=<run> --resume' "
                "writes it again from the newest checkpoint")


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load safetensors weights (no unpickling, so untrusted files cannot run code). A truncated or foreign file
    raises ValueError naming it."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise UsageError(f"{path}: weights must be a .safetensors file (pickled checkpoints are not loaded)")
    if not path.is_file():
        raise MissingFileError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise UsageError(f"{path}: not a readable safetensors file ({exc}); {REEXPORT_FIX}") from exc


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header only. ValueError if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open API
    except SafetensorError as exc:
        raise UsageError(f"{path}: not a readable safetensors file ({exc})") from exc


def shape_mismatches(shapes: Mapping[str, Sequence[int]], module: torch.nn.Module) -> list[str]:
    """``"name: file [..], model [..]"`` for each tensor present in both whose shapes differ."""
    own = module.state_dict()
    return [f"{k}: file {list(s)}, model {list(own[k].shape)}" for k, s in shapes.items()
            if k in own and tuple(s) != tuple(own[k].shape)]


def config_differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for every leaf that differs between two nested config mappings."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def load_strict(module: nn.Module, tensors: Mapping[str, torch.Tensor], path: Path, fix: str,
                what: str = "the model built now") -> None:
    """Copy ``tensors`` into ``module``: every tensor of its state dict must be there with its shape; ValueError
    naming ``path``, ``what`` it should fit, the first differences and ``fix`` otherwise."""
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    wrong = shape_mismatches({k: v.shape for k, v in tensors.items()}, module)
    if missing or extra or wrong:
        parts = [f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(wrong)} of another shape (e.g. {wrong[0]})" if wrong else ""]
        raise UsageError(f"{path}: does not fit {what}: {'; '.join(p for p in parts if p)}; {fix}")
    module.load_state_dict(tensors, strict=True)
