"""YAML loading with ``base:`` includes and ``key=value`` overrides, unknown-key and range errors, and the
dictionaries saved as a run's ``config.json`` (with the run's ``kind``)."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from audiolvm.config.audio import ClassifierExperimentConfig, ExperimentConfig
from audiolvm.config.common import ConfigError
from audiolvm.config.image import ImageExperimentConfig, ImagePriorExperimentConfig
from audiolvm.config.priors import PriorExperimentConfig

T = TypeVar("T")

#: the schema of each kind of run, by the ``kind`` its ``config.json`` records, with the command that trains it
RUN_KINDS: dict[str, tuple[type, str]] = {
    "audio": (ExperimentConfig, "audiolvm train"),
    "prior": (PriorExperimentConfig, "audiolvm train-prior"),
    "classifier": (ClassifierExperimentConfig, "audiolvm train-classifier"),
    "image": (ImageExperimentConfig, "audiolvm train-image"),
    "image_prior": (ImagePriorExperimentConfig, "audiolvm train-image-prior"),
}
KIND_KEY = "kind"


def schema_kind(schema: type) -> str | None:
    """The run kind whose config ``schema`` is (:data:`RUN_KINDS`); None for a section's schema."""
    return next((kind for kind, (cls, _) in RUN_KINDS.items() if cls is schema), None)


def _without_kind(data: dict, schema: type, source: str) -> dict:
    """``data`` less its top-level ``kind`` (what :func:`config_to_dict` adds), which must be ``schema``'s."""
    expected = schema_kind(schema)
    if expected is None or not isinstance(data, dict) or KIND_KEY not in data:
        return data
    kind = data[KIND_KEY]
    if kind not in RUN_KINDS:
        raise ConfigError(f"{source}: kind={kind!r} is unknown; a run's kind is one of {sorted(RUN_KINDS)}")
    if kind != expected:
        raise ConfigError(f"{source}: kind={kind!r}, a run of '{RUN_KINDS[kind][1]}', where a {expected!r} run "
                          f"('{RUN_KINDS[expected][1]}') was expected; pass a run of that kind")
    return {k: v for k, v in data.items() if k != KIND_KEY}


def _check_keys(user: Any, schema: Any, source: str, prefix: str = "") -> None:
    """Raise ConfigError for the first key in ``user`` that the dataclass ``schema`` lacks."""
    if not isinstance(user, dict):
        return
    inst = schema() if isinstance(schema, type) else schema
    names = [f.name for f in dataclasses.fields(inst)]
    for key, value in user.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {sorted(names)}"
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}")
        child = getattr(inst, key)
        if dataclasses.is_dataclass(child):
            _check_keys(value, child, source, f"{prefix}{key}.")


def _float_union(hint: Any) -> bool:
    """Whether a field's type is a union with ``float`` but not ``int`` (``float | list[float]``)."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return False
    args = typing.get_args(hint)
    return float in args and int not in args


def _to_float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return [_to_float(v) for v in value] if isinstance(value, list) else value


def _coerce(user: Any, schema: Any) -> Any:
    """``user`` with ints turned into floats in ``float | list[float]`` fields (``model.vq.beta: 1``): OmegaConf
    converts them in a ``float`` or ``list[float]`` field but refuses them in a union."""
    if not isinstance(user, dict):
        return user
    cls = schema if isinstance(schema, type) else type(schema)
    hints = typing.get_type_hints(cls)
    inst = schema() if isinstance(schema, type) else schema
    out = {}
    for key, value in user.items():
        child = getattr(inst, key, None)
        if dataclasses.is_dataclass(child):
            out[key] = _coerce(value, child)
        else:
            out[key] = _to_float(value) if _float_union(hints.get(key)) else value
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, dict]]:
    """Return [(source, mapping), ...] with bases first."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'base:' include")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    bases = data.pop("base", [])
    layers: list[tuple[str, dict]] = []
    for base in [bases] if isinstance(bases, str) else bases:
        layers += _read_yaml(path.parent / base, seen + (path,))
    return layers + [(str(path), data)]


def _parse_overrides(overrides: list[str]) -> list[tuple[str, dict]]:
    layers = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value, e.g. train.max_steps=100")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:  # e.g. a !!python tag, which safe_load refuses to construct
            first = str(exc).splitlines()[0]
            raise ConfigError(f"override '{item}': the value is not plain YAML ({first}); give a number, string, "
                              "list or mapping") from exc
        nested: dict = {}
        cursor = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
        layers.append((f"override '{item}'", nested))
    return layers


@overload
def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig: ...


@overload
def load_config(path: str | Path | None, overrides: list[str] | None, schema: type[T]) -> T: ...


@overload
def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *, schema: type[T]) -> T: ...


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                schema: type[Any] = ExperimentConfig) -> Any:
    """Schema defaults <- YAML (with bases) <- ``key=value`` overrides, validated and typed: an instance of
    ``schema`` (the audio VQ-VAE's :class:`ExperimentConfig` by default). A run's saved ``config.json`` loads
    too (its ``kind`` must be ``schema``'s)."""
    layers = _read_yaml(Path(path)) if path is not None else []
    layers += _parse_overrides(overrides or [])
    merged = OmegaConf.structured(schema)
    for source, mapping in layers:
        mapping = _without_kind(mapping, schema, source)
        _check_keys(mapping, schema, source)
        try:
            merged = OmegaConf.merge(merged, _coerce(mapping, schema))
        except OmegaConfBaseException as exc:
            msg = str(exc).splitlines()[0]
            raise ConfigError(f"{source}: {msg} (key '{getattr(exc, 'full_key', '?')}')") from exc
    return check_ranges(OmegaConf.to_object(merged), str(path) if path is not None else "overrides")


#: value ranges checked after every load: {schema class name: {field: (test, what it must be)}}
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_NOT_NEGATIVE = (lambda v: v >= 0, ">= 0")
_NOT_EMPTY = (lambda v: bool(str(v).strip()), "a non-empty path")
RANGES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "TrainConfig": {"max_steps": _AT_LEAST_1, "log_every": _AT_LEAST_1, "valid_every": _AT_LEAST_1,
                    "ckpt_every": _AT_LEAST_1, "grad_accum": _AT_LEAST_1, "max_nonfinite": _AT_LEAST_1,
                    "lr": _POSITIVE, "warmup_steps": _NOT_NEGATIVE, "keep_last": _NOT_NEGATIVE,
                    "grad_clip": _NOT_NEGATIVE, "divergence_ratio": (lambda v: v > 1, "> 1"),
                    "rollbacks": _NOT_NEGATIVE, "rollback_lr_scale": (lambda v: 0 < v < 1, "in (0, 1)"),
                    "out_dir": _NOT_EMPTY, "threads": (
                        lambda v: str(v).strip().lower() in ("auto", "follow") or (str(v).isdigit() and int(v) >= 1),
                        "'auto', 'follow' or a number of threads >= 1")},
    "DataConfig": {"root": _NOT_EMPTY, "crop_seconds": _POSITIVE, "batch_size": _AT_LEAST_1,
                   "sample_rate": _POSITIVE},
    "CodesDataConfig": {"root": _NOT_EMPTY, "window": (lambda v: v >= 2, ">= 2"), "batch_size": _AT_LEAST_1},
}


def check_ranges(cfg: T, source: str = "config", prefix: str = "") -> T:
    """Raise ConfigError naming the first field whose value is out of range (:data:`RANGES`); returns ``cfg``."""
    rules = RANGES.get(type(cfg).__name__, {})
    for f in dataclasses.fields(cfg):  # type: ignore[arg-type]
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, source, f"{prefix}{f.name}.")
        elif f.name in rules and value is not None:
            test, what = rules[f.name]
            if not test(value):
                raise ConfigError(f"{source}: {prefix}{f.name}={value!r} is out of range: it must be {what}; "
                                  f"set it in the config or with {prefix}{f.name}=VALUE")
    return cfg


def config_to_dict(cfg: Any) -> dict:
    """``cfg`` as plain data, what a run saves as ``config.json``: a run's config (:data:`RUN_KINDS`) leads with
    its ``kind``, so loaders need not guess it from the sections."""
    kind = schema_kind(type(cfg))
    data = dataclasses.asdict(cfg)
    return {KIND_KEY: kind, **data} if kind is not None else data


@overload
def config_from_dict(data: dict, source: str = "config") -> ExperimentConfig: ...


@overload
def config_from_dict(data: dict, source: str, schema: type[T]) -> T: ...


@overload
def config_from_dict(data: dict, source: str = "config", *, schema: type[T]) -> T: ...


def config_from_dict(data: dict, source: str = "config", schema: type[Any] = ExperimentConfig) -> Any:
    """The ``schema`` instance of saved plain data (:func:`config_to_dict`); a ``kind`` must be ``schema``'s."""
    data = _without_kind(data, schema, source)
    _check_keys(data, schema, source)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), _coerce(data, schema))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {str(exc).splitlines()[0]}") from exc
    return OmegaConf.to_object(merged)
