"""Benchmark: training speed under other load, for each ``train.threads`` setting, against the idle run.

Runs ``audiolvm train`` on a demo config (no validation, no checkpoints) once per (other load, threads) pair,
one after the other, and prints the wall time and the trainer's own ``time/steps_per_s`` windows (which leave
start-up out), with each setting's speed as a fraction of the idle run at the first setting. The other load:

  * ``loop``: one busy Python loop;
  * ``torch``: a second torch process training four 32-channel convs with 2 threads;
  * ``late``: a busy loop that starts 20 s into the run (what ``train.threads=follow`` is for).

    .venv/bin/python benchmarks/bench_threads.py                                     # speech demo, all loads
    .venv/bin/python benchmarks/bench_threads.py --config configs/demo/music_vqvae.yaml --steps 40
    .venv/bin/python benchmarks/bench_threads.py --loads idle loop --threads 2 auto   # a subset

Figures and the machine are in BENCHMARKS.md ("Intra-op threads under other load").
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_LOAD = """
import torch
torch.set_num_threads(2)
convs = torch.nn.Sequential(*[torch.nn.Conv1d(32, 32, 3, padding=1) for _ in range(4)])
x = torch.randn(8, 32, 4000)
while True:
    convs(x).square().mean().backward()
"""
LOADS = {
    "idle": None,
    "loop": ["-c", "while True: pass"],
    "torch": ["-c", TORCH_LOAD],
    "late": ["-c", "import time; time.sleep(20)\nwhile True: pass"],
}


def run(config: str, steps: int, threads: str, load: str, timeout: float) -> dict:
    """One training run under ``load``; wall seconds, steps/s windows and thread counts from metrics.csv."""
    other = subprocess.Popen([sys.executable, *LOADS[load]]) if LOADS[load] else None
    try:
        time.sleep(0.5 if other else 0)
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "audiolvm_pipelines.cli", "train", config, f"train.max_steps={steps}",
                   "train.valid_every=1000000", "train.ckpt_every=1000000", f"train.threads={threads}",
                   "train.progress=false", "train.tensorboard=false", f"train.out_dir={out}"]
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return {"wall": None, "rate": [], "threads": [], "note": f"stopped after {timeout:.0f} s"}
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"train failed:\n{proc.stderr[-2000:]}")
            with (Path(out) / "metrics.csv").open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r["split"] == "train"]
    finally:
        if other is not None:
            other.kill()
            other.wait()
    pick = lambda name: [float(r["value"]) for r in rows if r["name"] == name]  # noqa: E731
    return {"wall": wall, "rate": pick("time/steps_per_s"), "threads": [int(v) for v in pick("time/threads")]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo/speech_vqvae.yaml")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    p.add_argument("--threads", nargs="+", default=["2", "1", "auto", "follow"],
                   help="train.threads settings; the first one's idle run is the reference")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is stopped and reported so")
    args = p.parse_args()
    with open("/proc/loadavg") as fh:
        print(f"{args.config}, {args.steps} steps; load average before: {fh.read().split()[0]}")
    reference = None
    print(f"{'load':6s} {'threads':8s} {'wall s':>7s} {'steps/s (median)':>17s} {'x idle':>7s}  counts")
    for load in args.loads:
        for threads in args.threads:
            r = run(args.config, args.steps, threads, load, args.timeout)
            rate = statistics.median(r["rate"]) if r["rate"] else None
            if reference is None and load == "idle" and rate:
                reference = rate
            ratio = f"{rate / reference:7.2f}" if rate and reference else f"{'-':>7s}"
            wall = f"{r['wall']:7.1f}" if r["wall"] else f"{'-':>7s}"
            print(f"{load:6s} {threads:8s} {wall} {rate or float('nan'):17.2f} {ratio}  {r['threads']} "
                  f"{r.get('note', '')}", flush=True)


if __name__ == "__main__":
    main()
