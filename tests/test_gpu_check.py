"""``make gpu-check`` end to end on the CPU (``--dry-run``), so it is known to run the first time a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def test_dry_run_runs_sections_and_writes_their_figures(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--only", "cuda_tests,train,kv_cache_fp32",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["dry_run"] and set(report["sections"]) == {"cuda_tests", "train", "kv_cache_fp32"}
    assert all(e["status"] == "ok" for e in report["sections"].values())
    train = report["sections"]["train"]["figures"]
    assert train["step"] == 4 and train["time/steps_per_s"] > 0 and 0 <= train["time/data_wait"] <= 1
    assert report["sections"]["kv_cache_fp32"]["figures"]["contexts"][0]["cached_tok_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real check")
def test_without_a_gpu_the_real_check_refuses_with_a_hint(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--dry-run" in proc.stderr and not (tmp_path / "x.json").exists()
