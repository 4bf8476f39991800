"""Two processes on CPU (gloo) through ``accelerate launch``: codebooks stay identical across ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"


def launch(out: Path, *extra: str) -> tuple[dict, dict]:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(ROOT / "tests" / "dist_worker.py"), str(out), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed next to this python")
def test_two_process_codebooks_identical(tmp_path: Path) -> None:
    r0, r1 = launch(tmp_path / "allreduce")
    assert int(r0["world_size"]) == 2 == int(r1["world_size"])
    assert torch.equal(r0["codebook"], r1["codebook"])
    assert torch.equal(r0["ema_count"], r1["ema_count"])
    assert torch.equal(r0["first_param"], r1["first_param"])  # DDP keeps the parameters in step too

    # Without the all-reduce (DDP's broadcast_buffers is off) the ranks drift apart: the property
    # above is not automatic.
    n0, n1 = launch(tmp_path / "local", "--no-allreduce")
    assert not torch.equal(n0["codebook"], n1["codebook"])


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed next to this python")
@pytest.mark.parametrize("synth", ["nsf", "hpn"])
def test_two_process_pitch_model_stays_identical(tmp_path: Path, synth: str) -> None:
    """With the pitch path on (NSF source or the harmonic-plus-noise synthesizer, whose noise differs per rank; F0
    feature; F0 predictor trained from the batch's F0) every parameter and buffer is identical on both ranks after
    training."""
    r0, r1 = launch(tmp_path / "pitch", "--pitch", *(["--hpn"] if synth == "hpn" else []))
    assert int(r0["world_size"]) == 2
    assert any("pitch.predictor" in k for k in r0["params"]) and r0["params"].keys() == r1["params"].keys()
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed next to this python")
def test_two_process_adversarial_training_keeps_generator_and_discriminators_identical(tmp_path: Path) -> None:
    """Adversarial training (two optimizers, the discriminator phase's forward reaching no model parameter): every
    model and discriminator tensor is identical on both ranks, and both were trained."""
    r0, r1 = launch(tmp_path / "adv", "--adv")
    assert int(r0["world_size"]) == 2
    for part in ("params", "disc"):
        assert r0[part].keys() == r1[part].keys() and r0[part]
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), f"{part} {k}"
    assert int(r0["disc"]["steps"]) == 5  # five discriminator steps were taken
    initial = r0["disc_initial"]
    assert all(not torch.equal(initial[k], r0["disc"][k]) for k in initial if k.endswith("original1"))
