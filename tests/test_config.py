"""Config loading: includes, overrides, typed values, and errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audiolvm.config import (
    ClassifierExperimentConfig,
    ConfigError,
    ExperimentConfig,
    ImageExperimentConfig,
    ImagePriorExperimentConfig,
    PriorExperimentConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]


def test_base_include_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.5\n  max_steps: 7\nmodel:\n  strides: [[2, 2]]\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntrain:\n  lr: 0.25\n")
    cfg = load_config(tmp_path / "child.yaml", ["model.vq.num_codes=[17]", "model.strides=[[4, 5], [2]]"])
    assert cfg.train.lr == 0.25 and cfg.train.max_steps == 7
    assert cfg.model.vq.num_codes == [17] and cfg.model.strides == [[4, 5], [2]] and cfg.model.hops == [20, 40]
    assert cfg.model.per_level("vq.num_codes") == [17, 17]


def test_unknown_key_names_file_key_and_closest(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.1\n  max_step: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'train\.max_step'; did you mean 'train\.max_steps'"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="model.vq.decayy.*model.vq.decay"):
        load_config(None, ["model.vq.decayy=0.9"])


def test_type_errors_and_bad_syntax_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_config(None, ["train.max_steps=lots"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.max_steps"])
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "loop.yaml")


def shipped_schema(path: Path) -> type:
    """Which schema a shipped config is written for (by folder and name)."""
    if path.parent.name == "image" and path.stem.startswith("pixelcnn"):
        return ImagePriorExperimentConfig
    if path.parent.name == "image" or path.stem == "vae_digits":
        return ImageExperimentConfig
    if "classifier" in path.stem:
        return ClassifierExperimentConfig
    if "prior" in path.stem or "upsampler" in path.stem:
        return PriorExperimentConfig
    return ExperimentConfig


def test_shipped_configs_load_and_round_trip_through_json() -> None:
    paths = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len({shipped_schema(p) for p in paths}) == 5
    for path in paths:
        schema = shipped_schema(path)
        cfg = load_config(path, schema=schema)
        assert config_from_dict(config_to_dict(cfg), schema=schema) == cfg, path


@pytest.mark.parametrize("override, field, must", [
    ("train.ckpt_every=0", "train.ckpt_every=0", ">= 1"), ("train.log_every=0", "train.log_every=0", ">= 1"),
    ("train.valid_every=0", "train.valid_every=0", ">= 1"), ("train.grad_accum=0", "train.grad_accum=0", ">= 1"),
    ("train.max_steps=-5", "train.max_steps=-5", ">= 1"), ("train.lr=-1", "train.lr=-1.0", "> 0"),
    ("data.root=", "data.root=''", "a non-empty path"), ("data.crop_seconds=0", "data.crop_seconds=0.0", "> 0"),
])
def test_out_of_range_values_name_the_field(override: str, field: str, must: str) -> None:
    """Values that used to divide by zero, exit 0 without a model or scan the current directory."""
    with pytest.raises(ConfigError, match=re.escape(f"{field} is out of range: it must be {must}")):
        load_config(ROOT / "configs" / "tiny" / "speech_vqvae.yaml", [override])
    with pytest.raises(ConfigError, match=re.escape("codes.window=1 is out of range")):
        load_config(None, ["codes.window=1"], schema=PriorExperimentConfig)
