"""The speaker classifier: pooling, save/load, the train-classifier command, and held-out accuracy."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from audiolvm.builders import build_classifier, build_corpus, load_classifier, split_entries_for
from audiolvm.config import ClassifierExperimentConfig, ConfigError, config_to_dict, load_config
from audiolvm.core.files import atomic_write_json
from audiolvm.engine.checkpoint import save_weights
from audiolvm.eval.speaker import utterance_accuracy
from audiolvm.models.classifier import ClassificationObjective, SpeakerClassifier, masked_mean_std
from audiolvm_pipelines import train_classifier
from tests.contracts import ClassifierContract

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "demo" / "speaker_classifier.yaml")
DATA = f"data.root={ROOT / 'data' / 'speech'}"
SPEAKERS = [f"e{i:02d}" for i in range(1, 13)]


def train_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_classifier.add_parser(parser)
    return train_classifier.run(parser.parse_args(list(argv)))




def test_masked_pooling_ignores_frames_past_the_length() -> None:
    x = torch.randn(2, 3, 10)
    mask = torch.arange(10)[None] < torch.tensor([[4], [10]])  # item 0: 4 valid frames
    pooled = masked_mean_std(x, mask)  # (2, 6)
    assert torch.allclose(pooled[0, :3], x[0, :, :4].mean(-1), atol=1e-6)
    assert torch.allclose(pooled[0, 3:], x[0, :, :4].std(-1, unbiased=False), atol=1e-5)
    x2 = x.clone()
    x2[0, :, 4:] = 1e3  # whatever lies past the length does not matter
    assert torch.allclose(masked_mean_std(x2, mask), pooled)


class TestSpeakerClassifier(ClassifierContract):
    """From a quarter second (4,000 samples at 16 kHz) up."""

    def make_model(self) -> SpeakerClassifier:
        return SpeakerClassifier(self.num_classes, 16000, n_mels=32, channels=(8, 16), embed_dim=16)


def test_objective_counts_accuracy_over_known_speakers_only() -> None:
    torch.manual_seed(0)
    model = SpeakerClassifier(5, 16000, n_mels=32, channels=(8, 16), embed_dim=16).eval()
    batch = {"audio": torch.randn(4, 1, 8000), "speaker": torch.tensor([0, 1, 2, -1])}
    logits = model(batch["audio"])
    out = ClassificationObjective()(model, batch)
    expected = (logits.argmax(-1)[:3] == batch["speaker"][:3]).float().mean()  # -1 (unknown) is not counted
    assert torch.isclose(out["accuracy"], expected) and torch.isfinite(out["loss"])


def test_save_load_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    cfg = load_config(None, ["model.speakers=[a, b, c]", "model.channels=[8, 16]", "model.n_mels=32"],
                      schema=ClassifierExperimentConfig)
    torch.manual_seed(1)
    model = build_classifier(cfg.model, cfg.data.sample_rate)
    objective, opt = ClassificationObjective(), torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):  # move the weights and the BatchNorm running statistics away from their init
        batch = {"audio": torch.randn(4, 1, 6000), "speaker": torch.tensor([0, 1, 2, 0])}
        objective(model, batch)["loss"].backward()
        opt.step()
        opt.zero_grad()
    save_weights(model.state_dict(), tmp_path / "model.safetensors")
    atomic_write_json(tmp_path / "config.json", config_to_dict(cfg))
    loaded, loaded_cfg = load_classifier(tmp_path)
    x = torch.randn(2, 1, 9000)
    assert loaded_cfg.model.speakers == ["a", "b", "c"] and loaded.speakers == ["a", "b", "c"]
    assert torch.equal(model.eval()(x), loaded(x)) and not loaded.training
    with pytest.raises(ConfigError, match="at least two speakers"):
        build_classifier(dataclasses.replace(cfg.model, speakers=["a"]), 16000)


def test_train_classifier_writes_speakers_weights_and_eval(tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "cls"
    assert train_cli(CONFIG, DATA, f"train.out_dir={out}", "train.max_steps=3", "train.progress=false",
                     "data.batch_size=4") == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["speakers"] == SPEAKERS and saved["train"]["max_steps"] == 3
    assert (out / "model.safetensors").is_file()
    model, cfg = load_classifier(out)
    assert model.speakers == SPEAKERS and cfg.name == "demo_speaker_classifier"
    from audiolvm_pipelines.info import checkpoint_info

    assert (checkpoint_info(str(out))["run"], checkpoint_info(str(out))["speakers"]) == ("classifier", len(SPEAKERS))
    _, valid = split_entries_for(cfg, "valid")
    report = json.loads((out / "eval.json").read_text())["held_out_utterances"]
    assert report["n"] == len(valid) > 0 and set(report["per_speaker"]) <= set(SPEAKERS)


def test_train_classifier_rejects_wrong_speakers_and_held_out_speakers(tmp_path: Path) -> None:
    common = [CONFIG, DATA, f"train.out_dir={tmp_path}", "train.max_steps=1"]
    with pytest.raises(ConfigError, match="model.speakers lists 2 speakers"):
        train_cli(*common, "model.speakers=[e01, e02]")
    with pytest.raises(ConfigError, match="holds out speakers"):
        train_cli(*common, "data.split_by=speaker")


def test_demo_split_holds_out_the_vc_models_valid_utterances() -> None:
    """Same split_seed, smaller valid_fraction: the VQ-VAEs' held-out utterances are held out here too."""
    cls = load_config(CONFIG, [DATA], schema=ClassifierExperimentConfig)
    _, cls_train, _ = build_corpus(cls.data)
    seen = {e.path for e in cls_train}
    for name in ("speech_vqvae.yaml",):
        vq = load_config(ROOT / "configs" / "demo" / name, [DATA])
        _, _, vq_valid = build_corpus(vq.data)
        assert vq_valid and not seen & {e.path for e in vq_valid}, name


@pytest.mark.slow
def test_brief_training_classifies_held_out_utterances(tmp_path: Path, one_thread: None) -> None:
    """150 steps (about 15 s on one core) name the speaker of >= 90% of the ~46 whole held-out utterances
    (measured: 100% at 150 and at 300 steps); the saved weights give the accuracy in eval.json."""
    out = tmp_path / "cls"
    assert train_cli(CONFIG, DATA, f"train.out_dir={out}", "train.max_steps=150", "train.progress=false") == 0
    report = json.loads((out / "eval.json").read_text())["held_out_utterances"]
    assert report["n"] >= 40 and report["accuracy"] >= 0.9
    model, cfg = load_classifier(out)
    reader, valid = split_entries_for(cfg, "valid")
    again = utterance_accuracy(model, reader, [e for e, _ in valid])
    assert again.n == report["n"] and again.accuracy == pytest.approx(report["accuracy"])
