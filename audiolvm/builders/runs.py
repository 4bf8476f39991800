"""Run folders: where a run's weights and config are, which kind of run it is, and loading one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from audiolvm.config import KIND_KEY, config_from_dict
from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import read_json
from audiolvm.engine.checkpoint import latest_checkpoint, load_strict, load_weights

log = logging.getLogger(__name__)
RUN_JSON_FIX = "copy it back from a checkpoints/step_* folder of the run, or train again"
C = TypeVar("C")
M = TypeVar("M", bound=nn.Module)


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """Find (weights.safetensors, config.json) from a run folder, a checkpoint folder or a file."""
    path = Path(path)
    if path.is_file():
        weights, config = path, path.parent / "config.json"
    elif (path / "model.safetensors").is_file():
        weights, config = path / "model.safetensors", path / "config.json"
    elif (latest := latest_checkpoint(path / "checkpoints")) is not None:
        weights, config = latest / "model.safetensors", latest / "config.json"
    else:
        raise MissingFileError(
            f"{path}: no model.safetensors here or under checkpoints/; pass a run folder written by "
            "'audiolvm train', one of its checkpoints/step_* folders, or a .safetensors file"
        )
    if not config.is_file():
        raise MissingFileError(f"{config}: the config.json that built {weights.name} is missing")
    return weights, config


def read_run_config(config_path: Path) -> dict[str, Any]:
    """A run's saved ``config.json`` as a mapping of config sections."""
    raw = read_json(config_path, RUN_JSON_FIX)
    if not isinstance(raw, dict):
        raise UsageError(f"{config_path}: expected a mapping of config sections")
    return raw


def recorded_kind(raw: dict[str, Any], source: str) -> str:
    """The ``kind`` a run's ``config.json`` records (every training command writes it, through
    :func:`~audiolvm.config.config_to_dict`); a run saved before that has its kind guessed from its sections."""
    return str(raw[KIND_KEY]) if KIND_KEY in raw else guessed_kind(raw, source)


def guessed_kind(raw: dict[str, Any], source: str) -> str:
    """Deprecated: the kind of a run saved without one, from the sections of its ``config.json``."""
    if "vqvae" in raw and "prior" in raw:
        kind = "image_prior"
    elif "codes" in raw and "prior" in raw:
        kind = "prior"
    elif "image_shape" in raw.get("model", {}):
        kind = "image"
    elif "speakers" in raw.get("model", {}) and "embed_dim" in raw.get("model", {}):
        kind = "classifier"
    else:
        kind = "audio"
    log.warning("%s records no run kind (saved before runs recorded it); guessed %r from its sections. This guess "
                "is deprecated: add \"%s\": %r to that file, or train the run again", source, kind, KIND_KEY, kind)
    return kind


def run_kind(path: str | Path) -> str:
    """Which command wrote a run folder, as its ``config.json`` records: ``audio`` (train), ``prior``
    (train-prior), ``classifier`` (train-classifier), ``image`` (train-image) or ``image_prior``
    (train-image-prior)."""
    _, config_path = resolve_checkpoint(path)
    return recorded_kind(read_run_config(config_path), str(config_path))


def load_run(path: str | Path, schema: type[C], build: Callable[[C], M], what: str) -> tuple[M, C]:
    """``(module in eval mode, config)`` of a run folder (or checkpoint, or .safetensors file): the saved
    ``config.json`` read with ``schema``, the module built from it by ``build(cfg)``, and the safetensors
    weights loaded strictly (never unpickled). A mismatch names both files and the ``what`` expected."""
    weights, config_path = resolve_checkpoint(path)
    raw = read_run_config(config_path)
    recorded_kind(raw, str(config_path))  # a run saved without its kind: the deprecation note
    cfg = config_from_dict(raw, str(config_path), schema=schema)
    module = build(cfg)
    load_strict(module, load_weights(weights), weights, "keep the weights and config.json of one run together",
                f"the {what} that {config_path} builds")
    return module.eval(), cfg
