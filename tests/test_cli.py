"""The ``audiolvm`` CLI end to end on the embedded corpus with the tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolvm.core.audio import load_audio
from audiolvm.core.errors import MissingFileError, UnknownNameError, UsageError
from audiolvm_pipelines.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")
DATA = f"data.root={ROOT / 'data' / 'speech'}"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", TINY, DATA, f"train.out_dir={out}", "train.max_steps=6"]) == 0
    return out


def test_train_writes_checkpoint_config_and_curves(run_dir: Path) -> None:
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "curves.png").is_file()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["max_steps"] == 6 and saved["name"] == "tiny_speech_vqvae"
    assert (run_dir / "checkpoints" / "step_000006" / "trainer_state.json").is_file()


def test_reconstruct_keeps_length_and_rate(run_dir: Path, tmp_path: Path) -> None:
    src = next((ROOT / "data" / "speech").rglob("*.flac"))
    out = tmp_path / "out.wav"
    assert main(["reconstruct", "--checkpoint", str(run_dir), "--input", str(src), "--output", str(out)]) == 0
    x, rate = load_audio(src, sample_rate=16000)
    y, rate_out = load_audio(out)
    assert rate_out == 16000 and len(y) == len(x) and np.isfinite(y).all()


def test_reconstruct_folder_skips_bad_files(run_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "ok.wav", np.zeros(1600, np.float32), 16000)
    (src / "bad.wav").write_bytes(b"junk")
    assert main(["reconstruct", "--checkpoint", str(run_dir), "--input", str(src), "--output",
                 str(tmp_path / "out")]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.wav"]


def test_info_reports_checkpoint_and_data(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "--json", "--checkpoint", str(run_dir), "--data", str(ROOT / "data" / "speech")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checkpoint"]["hops"] == [8] and info["checkpoint"]["codes"] == [64]
    assert info["checkpoint"]["run"] == "audio"
    assert info["data"]["speakers"] == 12 and info["data"]["utterances"] == 216


def test_user_errors_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["train", TINY, "train.max_stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'train.max_stepz'; did you mean 'train.max_steps'" in err and "Traceback" not in err
    assert main(["reconstruct", "--checkpoint", str(tmp_path), "--input", "x.wav", "--output", "y.wav"]) == 2
    assert "no model.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("raised", [ValueError("a bug"), KeyError("a bug"), OSError("a bug"), RuntimeError("a bug")])
def test_errors_that_are_not_the_projects_keep_their_traceback(monkeypatch: pytest.MonkeyPatch,
                                                                raised: Exception) -> None:
    """Only the project's own error types are user errors; a builtin one from a bug propagates (the traceback)."""
    def run(args: object) -> int:
        raise raised

    monkeypatch.setattr(COMMANDS["info"], "run", run)
    with pytest.raises(type(raised)):
        main(["info"])


@pytest.mark.parametrize("raised", [UsageError("bad value; use 3"), UnknownNameError("no speaker 'x'; use p225"),
                                    MissingFileError("no run.json in /x; train first")])
def test_project_errors_are_one_line_and_debug_shows_their_traceback(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture,
                                                                    raised: Exception) -> None:
    def run(args: object) -> int:
        raise raised

    monkeypatch.setattr(COMMANDS["info"], "run", run)
    assert main(["info"]) == 2
    assert capsys.readouterr().err == f"audiolvm info: error: {raised.args[0]}\n"  # no quotes around a name's message
    with pytest.raises(type(raised)):
        main(["--debug", "info"])



def test_divergence_stops_with_one_line_and_names_no_bad_checkpoint(capsys: pytest.CaptureFixture,
                                                                     tmp_path: Path) -> None:
    """train.lr=1e9: the weights blow up after the first update; the run stops with exit code 2 and one line
    naming the field to change, and claims no checkpoint as good (none is: the only one would be step 1)."""
    assert main(["train", TINY, DATA, "train.lr=1e9", "train.ckpt_every=1", "train.max_steps=40",
                 f"train.out_dir={tmp_path}", "train.progress=false", "train.tensorboard=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("audiolvm train: error: training diverged") and "train.lr (now 1e+09)" in err
    assert "no good checkpoint was written" in err

def test_training_is_reproducible_under_the_seed(tmp_path: Path) -> None:
    """Initial weights, crops and data order all come from train.seed: two runs give identical weights,
    and another seed gives different ones."""
    from audiolvm.engine.checkpoint import load_weights

    weights = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / name
        assert main(["train", TINY, DATA, f"train.out_dir={out}", "train.max_steps=2", f"train.seed={seed}"]) == 0
        weights[name] = load_weights(out / "model.safetensors")
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])
