"""The builders package: every name it had as one module, the run kind that training records in config.json (and
old runs without it), the one VQ config of both families, and train-prior's --stop-after."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import audiolvm.builders as builders
from audiolvm.builders import (
    build_bottleneck,
    build_image_model,
    load_any_run,
    load_image_model,
    load_prior,
    run_kind,
)
from audiolvm.config import (
    RUN_KINDS,
    ConfigError,
    ImageExperimentConfig,
    ImageModelConfig,
    VQConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from audiolvm.data.codes import CodeItem, CodeWriter, LevelInfo
from audiolvm.engine.checkpoint import load_weights
from audiolvm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY_IMAGE = str(ROOT / "configs" / "tiny" / "vae_digits.yaml")
PRIOR_TOP = str(ROOT / "configs" / "demo" / "prior_top.yaml")
#: the public names of audiolvm/builders.py before it became a package (issue 17)
OLD_NAMES = (
    "CODES_JSON_FIX DISCRIMINATORS IMAGE_DATASETS IMAGE_KINDS ImageCodeData PRIOR_KINDS RUN_JSON_FIX SPLITS "
    "build_bottleneck build_classifier build_corpus build_datasets build_discriminators build_image_code_data "
    "build_image_datasets build_image_model build_image_objective build_model build_objective build_pitch_table "
    "build_prior build_reconstruction_objective chain_stage check_code_levels check_pitch_config check_prior_matches "
    "content_encoder enroll_voice enrolled_config load_any_run load_chain load_classifier load_discriminators "
    "load_image_model load_image_prior load_model load_prior load_run load_speaker_model load_stages pitch_settings "
    "resolve_checkpoint resolve_image_config resolve_prior_config run_kind split_entries_for synth_decoder"
).split()


def test_every_name_of_the_old_module_is_still_exported() -> None:
    missing = [name for name in OLD_NAMES if not hasattr(builders, name)]
    assert not missing and set(OLD_NAMES) <= set(builders.__all__), missing


# ------------------------------------------------------------------------------------------ run kinds
@pytest.mark.parametrize("kind", sorted(RUN_KINDS))
def test_a_run_config_leads_with_its_kind_and_round_trips(kind: str) -> None:
    schema = RUN_KINDS[kind][0]
    saved = json.loads(json.dumps(config_to_dict(schema())))
    assert next(iter(saved)) == "kind" and saved["kind"] == kind
    assert config_from_dict(saved, schema=schema) == schema()
    other = next(k for k in RUN_KINDS if k != kind)
    with pytest.raises(ConfigError, match=f"kind='{other}'.*a '{kind}' run"):
        config_from_dict({**saved, "kind": other}, "x/config.json", schema=schema)
    with pytest.raises(ConfigError, match="kind='vae' is unknown"):
        config_from_dict({**saved, "kind": "vae"}, schema=schema)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("kind") / "vae"
    assert main(["train-image", TINY_IMAGE, f"train.out_dir={run}", "train.max_steps=2", "train.ckpt_every=2",
                 "train.valid_every=2"]) == 0
    return run


def test_training_writes_the_run_kind_into_config_json(image_run: Path, caplog: pytest.LogCaptureFixture) -> None:
    for path in (image_run / "config.json", image_run / "checkpoints" / "step_000002" / "config.json"):
        assert json.loads(path.read_text())["kind"] == "image", path
    with caplog.at_level(logging.WARNING, logger="audiolvm.builders"):
        assert run_kind(image_run) == "image" and load_any_run(image_run)[0] == "image"
    assert "run kind" not in caplog.text  # recorded, not guessed
    with pytest.raises(ConfigError, match="kind='image', a run of 'audiolvm train-image'.*'prior' run"):
        load_prior(image_run)
    # a saved run config is also a config file: training again from it keeps every value
    again = load_config(image_run / "config.json", schema=ImageExperimentConfig)
    assert config_to_dict(again) == json.loads((image_run / "config.json").read_text())


def test_a_run_saved_without_its_kind_still_loads_with_a_deprecation_note(
        image_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(image_run / "model.safetensors", old / "model.safetensors")
    saved = json.loads((image_run / "config.json").read_text())
    del saved["kind"]
    (old / "config.json").write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING, logger="audiolvm.builders"):
        kind, model, cfg = load_any_run(old)
    assert kind == "image" and "records no run kind" in caplog.text and "deprecated" in caplog.text
    fresh, fresh_cfg = load_image_model(image_run)
    assert cfg == fresh_cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(),
                                                  strict=True))


# ------------------------------------------------------------------------------------------ one VQ config
def test_one_vq_config_keeps_each_familys_defaults_and_forms() -> None:
    assert VQConfig() == VQConfig(num_codes=[2048], dim=64, beta=[0.25], decay=0.99, dead_threshold=1.0,
                                  init="first_batch")  # the audio family's
    assert ImageModelConfig().vq == VQConfig(num_codes=64, dim=16, beta=0.25)  # the image family's single values
    image = load_config(ROOT / "configs" / "image" / "vqvae_digits.yaml", ["model.vq.beta=1"],
                        schema=ImageExperimentConfig)
    assert image.model.vq.num_codes == 32 and image.model.vq.beta == 1.0 and isinstance(image.model.vq.beta, float)
    audio = load_config(None, ["model.strides=[[2], [2]]", "model.vq.num_codes=[16, 8]", "model.vq.beta=[1]"])
    vqs = [build_bottleneck(audio.model, level) for level in range(2)]
    assert [(vq.num_codes, vq.beta) for vq in vqs] == [(16, 1.0), (8, 1.0)] and isinstance(vqs[0].beta, float)
    model = build_image_model(ImageModelConfig(kind="vqvae", image_shape=[1, 8, 8], vq=VQConfig(num_codes=32, dim=8,
                                                                                                 beta=0.5)))
    assert (model.bottleneck.num_codes, model.bottleneck.dim, model.bottleneck.beta) == (32, 8, 0.5)
    with pytest.raises(ConfigError, match="model.vq.num_codes has 2 values for 1 levels"):
        build_image_model(ImageModelConfig(kind="vqvae", image_shape=[1, 8, 8], vq=VQConfig(num_codes=[32, 16])))


# ------------------------------------------------------------------------------------------ train-prior
def test_train_prior_stops_after_n_steps_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with CodeWriter(tmp_path / "codes", [LevelInfo(0, 8, 16)], 16000) as writer:
        for i, n in enumerate((200, 130, 300, 90)):
            writer.add(CodeItem(id=f"t{i}", speaker=f"s{i % 2}", split="valid" if i == 3 else "train"),
                       [rng.integers(0, 16, size=n)])
    common = [PRIOR_TOP, f"codes.root={tmp_path / 'codes'}", "codes.level=0", "codes.window=32", "codes.batch_size=2",
              "prior.dim=16", "prior.layers=1", "prior.heads=2", "prior.context=32", "train.max_steps=4",
              "train.ckpt_every=2", "train.tensorboard=false", "train.progress=false"]
    assert main(["train-prior", *common, f"train.out_dir={tmp_path / 'straight'}"]) == 0
    parts = tmp_path / "parts"
    assert main(["train-prior", *common, f"train.out_dir={parts}", "--stop-after", "2"]) == 0
    assert json.loads((parts / "checkpoints" / "step_000002" / "trainer_state.json").read_text())["step"] == 2
    assert not (parts / "checkpoints" / "step_000004").exists()
    assert json.loads((parts / "config.json").read_text())["kind"] == "prior"
    assert main(["train-prior", *common, f"train.out_dir={parts}", "--resume"]) == 0
    a, b = load_weights(tmp_path / "straight" / "model.safetensors"), load_weights(parts / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
