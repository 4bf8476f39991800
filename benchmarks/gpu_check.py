"""The project's GPU check: one script, about 8 minutes on one GPU, that writes every figure to one JSON file.

Sections, each a subprocess with its own time limit (a section that fails or runs out of time is recorded as
such and the next one runs; the JSON is rewritten after every section, so a cut-off run keeps what it had):

1. ``cuda_tests``: ``tests/test_cuda.py``: no host sync between sync points (``set_sync_debug_mode("error")``),
   GPU step equals CPU step, cached sampling equals recomputed, bf16 training stays finite.
2. ``vq``, ``multilevel``, ``kv_cache``, ``sampling``: the benchmarks with ``--device cuda``, in fp32 and in bf16
   autocast (``<name>_fp32``, ``<name>_bf16``); ``multilevel_fp32`` also times ``torch.compile`` of the step.
3. ``train``: 200 steps of the reference speech config (``configs/speech_vqvae.yaml``) on the embedded corpus
   with 4 loader workers: steps/s and the share of time spent waiting for batches (``time/data_wait``).
4. ``loader``: ``bench_loader.py`` with the GPU's measured steps/s as the consumption to beat.
5. ``prior_sampling``: top-level prior sampling against real time at a Jukebox-like width (1024 wide, 24 layers,
   context 2048, 20 s of audio); Jukebox's 72-layer top prior is too big for the time budget.

``--dry-run`` runs every section on the CPU at the smallest sizes (``--quick``), to check the script end to end
without a GPU; ``--only a,b`` runs a subset.

    .venv/bin/python benchmarks/gpu_check.py --out gpu_check.json          # on the GPU machine (make gpu-check)
    .venv/bin/python benchmarks/gpu_check.py --dry-run --out /tmp/dry.json   # anywhere
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import write_json  # noqa: E402

PY = sys.executable


def _bench(name: str, *extra: str) -> list[str]:
    return [PY, str(ROOT / "benchmarks" / f"bench_{name}.py"), *extra]


def sections(dry: bool, tmp: Path) -> dict[str, tuple[list[str], int, Path | None]]:
    """{name: (command, time limit in s, JSON it writes or None)} in the order they run (the most telling
    first, so a tight budget cuts the benchmarks, not the checks); dry: CPU and the smallest sizes."""
    dev = ["--device", "cpu", "--quick"] if dry else ["--device", "cuda"]
    out: dict[str, tuple[list[str], int, Path | None]] = {
        "cuda_tests": ([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_cuda.py")], 120,
                       None),
    }
    config = ROOT / "configs" / ("tiny/speech_vqvae.yaml" if dry else "speech_vqvae.yaml")
    out["train"] = ([PY, "-m", "audiolvm_pipelines.cli", "train", str(config), f"data.root={ROOT / 'data' / 'speech'}",
                     f"train.out_dir={tmp / 'train_run'}", f"train.max_steps={4 if dry else 200}",
                     f"train.log_every={2 if dry else 50}", f"data.num_workers={0 if dry else 4}",
                     "train.progress=false", "train.tensorboard=false", f"train.valid_every={10**6}",
                     f"train.ckpt_every={10**6}"], 150, None)
    out["loader"] = (_bench("loader", *(["--quick"] if dry else ["--workers", "0", "4", "8"]), "--json",
                            str(tmp / "loader.json")), 150, tmp / "loader.json")
    big = ["--quick"] if dry else ["--dim", "1024", "--layers", "24", "--heads", "16", "--context", "2048",
                                   "--seconds", "20", "--skip-recompute", "--bf16"]
    out["prior_sampling"] = (_bench("sampling", *[a for a in dev if a != "--quick"], *big, "--json",
                                    str(tmp / "prior_sampling.json")), 150, tmp / "prior_sampling.json")
    for name in ("vq", "kv_cache", "sampling", "multilevel"):
        for precision in ("fp32", "bf16"):
            path = tmp / f"{name}_{precision}.json"
            own = list(dev) + (["--attempts", "1"] if name == "vq" else [])
            if name == "multilevel" and precision == "bf16" and "--quick" not in own:
                own.append("--quick")  # eager only: the fp32 run already times torch.compile
            cmd = _bench(name, *own, *(["--bf16"] if precision == "bf16" else []), "--json", str(path))
            out[f"{name}_{precision}"] = (cmd, 180 if name == "multilevel" else 90, path)
    return out


def train_figures(run: Path) -> dict:
    """Steps/s and loader wait share of the train section, from its metrics.csv (the last log window, past
    start-up)."""
    with open(run / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "train" and r["name"].startswith("time/")]
    last = max(int(r["step"]) for r in rows)
    return {r["name"]: float(r["value"]) for r in rows if int(r["step"]) == last} | {"step": last}


def device_info(dry: bool) -> dict:
    import torch

    if torch.cuda.is_available() and not dry:
        props = torch.cuda.get_device_properties(0)
        return {"device": torch.cuda.get_device_name(0), "memory_gib": round(props.total_memory / 2**30, 1),
                "cuda": torch.version.cuda, "torch": torch.__version__}
    return {"device": f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
            "torch": torch.__version__}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check.json", help="the JSON of figures (rewritten after each section)")
    p.add_argument("--dry-run", action="store_true", help="every section on the CPU at the smallest sizes")
    p.add_argument("--only", default="", help="comma-separated section names (default: all)")
    p.add_argument("--budget", type=float, default=480.0, help="seconds; sections that would start later are skipped")
    args = p.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    report: dict = {"dry_run": args.dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S"), **device_info(args.dry_run),
                    "sections": {}}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp_name:
        tmp = Path(tmp_name)
        plan = sections(args.dry_run, tmp)
        wanted = [s for s in args.only.split(",") if s] or list(plan)
        unknown = sorted(set(wanted) - set(plan))
        if unknown:
            print(f"gpu_check: unknown section(s) {unknown}; choose from {list(plan)}", file=sys.stderr)
            return 2
        for name in wanted:
            cmd, limit, json_path = plan[name]
            measured = report["sections"].get("train", {}).get("figures", {}).get("time/steps_per_s")
            if name == "loader" and measured and not args.dry_run:
                cmd = [*cmd, "--model-steps-per-s", str(measured)]  # the GPU's own consumption, not an estimate
            left = args.budget - (time.perf_counter() - t_start)
            if left < 20:
                report["sections"][name] = {"status": "skipped (time budget spent)"}
                continue
            t0 = time.perf_counter()
            env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
            try:
                proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=min(limit, left))
                status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                tail = (proc.stdout + proc.stderr)[-2000:]
            except subprocess.TimeoutExpired as exc:
                status, tail = "timeout", str(exc.stdout or "")[-2000:]
            entry = {"status": status, "seconds": round(time.perf_counter() - t0, 1), "command": " ".join(cmd[1:]),
                     "tail": tail}
            if status == "ok" and json_path is not None and json_path.is_file():
                entry["figures"] = json.loads(json_path.read_text())
            if status == "ok" and name == "train":
                entry["figures"] = train_figures(tmp / "train_run")
            report["sections"][name] = entry
            print(f"[{time.perf_counter() - t_start:6.0f} s] {name}: {status} ({entry['seconds']} s)", flush=True)
            write_json(args.out, report)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(args.out, report)
    failed = [n for n, e in report["sections"].items() if e["status"] != "ok"]
    print(f"gpu_check: {len(report['sections']) - len(failed)} of {len(report['sections'])} sections ok; {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
