"""Benchmark: audiolvm's VectorQuantizerEMA against vector-quantize-pytorch's VectorQuantize.

Both run in training mode (EMA codebook updates and dead-code restarts on) with the same config:
K=2048 codes, D=64, EMA decay 0.99, dead-code threshold 2, commitment weight 0.25, on a batch of
16 x 4096 vectors (65,536), forward + backward, CPU, 2 threads. Every variant runs in its own
subprocess so that its peak resident memory (``ru_maxrss``) is its own. ``--device cuda`` runs on a GPU
(timing synchronised, peak memory also from ``torch.cuda.max_memory_allocated``), ``--bf16`` runs the
forward under bfloat16 autocast (a peer variant that fails there is reported with its error), and
``--json PATH`` also writes the figures as one JSON object.

    .venv/bin/python benchmarks/bench_vq.py            # full batch (65,536 vectors)
    .venv/bin/python benchmarks/bench_vq.py --quick    # 4 x 4096 vectors, fewer iterations
    .venv/bin/python benchmarks/bench_vq.py --device cuda --bf16 --json vq.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import (  # noqa: E402
    bf16_autocast,
    cpu_seconds,
    device_name,
    device_sync,
    is_cuda,
    peak_rss_mib,
    write_json,
)

NUM_CODES, DIM, DECAY, DEAD_THRESHOLD, BETA = 2048, 64, 0.99, 2.0, 0.25
VARIANTS = ("audiolvm", "peer (rotation_trick=True, default)", "peer (rotation_trick=False)")


def _build(variant: str):
    """A module and a step function ``x -> loss`` for one variant; ``x`` is ``Tensor[B x N x D]``."""
    if variant == "audiolvm":
        from audiolvm.bottleneck import VectorQuantizerEMA

        vq = VectorQuantizerEMA(NUM_CODES, DIM, beta=BETA, decay=DECAY, dead_threshold=DEAD_THRESHOLD)

        def step(x):
            result = vq(x.transpose(1, 2))  # ours is channels-first: (B, D, N)
            return result.z.square().mean() + result.losses["commitment"]

        return vq, step
    from vector_quantize_pytorch import VectorQuantize

    rotation = "rotation_trick=False" not in variant
    vq = VectorQuantize(dim=DIM, codebook_size=NUM_CODES, decay=DECAY, threshold_ema_dead_code=DEAD_THRESHOLD,
                        commitment_weight=BETA, rotation_trick=rotation)

    def step(x):
        quantized, _, loss = vq(x)  # (B, N, D)
        return quantized.square().mean() + loss.sum()

    return vq, step


def worker(variant: str, batch: int, length: int, warmup: int, iters: int, device: str = "cpu",
           bf16: bool = False) -> dict:
    """Time ``iters`` forward+backward steps of one variant; returns a JSON-able dict. Under ``bf16`` a
    peer variant that raises returns ``{"variant", "error", ...}`` instead."""
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    info = {"variant": variant, "device": device, "device_name": device_name(device), "bf16": bf16,
            "torch": torch.__version__}
    try:
        return {**info, **_time_steps(torch, variant, batch, length, warmup, iters, device, bf16)}
    except Exception as e:  # the peer library may not support bf16: report, don't crash
        if not bf16 or variant == "audiolvm":
            raise
        return {**info, "error": f"{type(e).__name__}: {e}"}


def _time_steps(torch, variant: str, batch: int, length: int, warmup: int, iters: int,  # noqa: ANN001
                device: str, bf16: bool) -> dict:
    cuda = is_cuda(device)
    sync = device_sync(device) or (lambda: None)
    vq, step = _build(variant)
    vq.to(device).train()
    baseline = peak_rss_mib()
    if cuda:
        sync()
        baseline_gpu = torch.cuda.memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    x = torch.randn(batch, length, DIM, device=device, requires_grad=True)  # (B, N, D)
    times = []
    for i in range(warmup + iters):
        if i == warmup:
            busy0, own0 = cpu_seconds()
        sync()
        start = time.perf_counter()
        with bf16_autocast(device, bf16):
            loss = step(x)
        loss.backward()  # outside autocast, as PyTorch advises: its ops run in the forward's dtypes
        x.grad = None
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    busy1, own1 = cpu_seconds()
    vectors = batch * length
    median = sorted(times)[len(times) // 2]
    out = {"vectors_per_s": vectors / median, "best_vectors_per_s": vectors / min(times),
           "peak_mib": peak_rss_mib(), "baseline_mib": baseline,
           "other_cores": max(0.0, (busy1 - busy0) - (own1 - own0)) / sum(times)}
    if cuda:
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["baseline_gpu_mib"] = baseline_gpu
    return out


def _run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Run one variant in a fresh process; on a busy machine retry and keep the quietest attempt."""
    best = None
    for _ in range(args.attempts):
        row = _run_once(variant, args)
        if "error" in row:
            return row
        if best is None or row["other_cores"] < best["other_cores"]:
            best = row
        if best["other_cores"] < args.max_other_load:
            break
        print(f"  {variant}: {row['other_cores']:.2f} cores busy elsewhere while timing; retrying",
              file=sys.stderr)
    return best


def _run_once(variant: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--batch", str(args.batch),
           "--length", str(args.length), "--warmup", str(args.warmup), "--iters", str(args.iters),
           "--device", args.device] + (["--bf16"] if args.bf16 else [])
    repo_root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=repo_root, env=env)
    if out.returncode != 0:
        if args.bf16 and variant != "audiolvm":  # a peer crash under bf16 is a figure, not a failure
            last = (out.stderr.strip().splitlines() or [""])[-1]
            return {"variant": variant, "device": args.device, "bf16": True,
                    "error": f"worker exit {out.returncode}: {last}"}
        raise RuntimeError(f"bench_vq worker {variant!r} failed (exit {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _results(rows: list[dict], args: argparse.Namespace) -> dict:
    """The figures as one JSON-able dict; each variant row gains its ratios (ours / that row) and, where
    the memory columns come from, ``mem_source``: ``"gpu"`` (``max_memory_allocated``) or ``"rss"``."""
    ours = rows[0]
    gpu = "peak_gpu_mib" in ours
    peak, base = ("peak_gpu_mib", "baseline_gpu_mib") if gpu else ("peak_mib", "baseline_mib")
    ours_extra = ours[peak] - ours[base]
    variants = []
    for row in rows:
        row = dict(row)
        if "error" not in row:
            extra = row[peak] - row[base]
            row.update(mem_source="gpu" if gpu else "rss", above_base_mib=extra,
                       speed_ratio=ours["vectors_per_s"] / row["vectors_per_s"],
                       peak_ratio=_ratio(ours[peak], row[peak]), above_base_ratio=_ratio(ours_extra, extra))
        variants.append(row)
    return {"bench": "vq", "device": args.device, "device_name": ours["device_name"], "bf16": args.bf16,
            "torch": ours["torch"], "threads": 2,
            "config": {"num_codes": NUM_CODES, "dim": DIM, "decay": DECAY, "dead_threshold": DEAD_THRESHOLD,
                       "beta": BETA, "batch": args.batch, "length": args.length,
                       "vectors_per_step": args.batch * args.length, "warmup": args.warmup, "iters": args.iters},
            "variants": variants}


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _report(res: dict) -> None:
    rows = res["variants"]
    gpu = rows[0]["mem_source"] == "gpu"
    peak, base = ("peak_gpu_mib", "baseline_gpu_mib") if gpu else ("peak_mib", "baseline_mib")
    where = f"{res['device']} ({res['device_name']})" if is_cuda(res["device"]) else "2 threads"
    print(f"\nVQ forward+backward, training mode, K={NUM_CODES}, D={DIM}, "
          f"{res['config']['vectors_per_step']:,} vectors/step, torch {res['torch']}, {where}"
          + (", bf16 autocast" if res["bf16"] else ""))
    peak_head = "GPU peak MiB" if gpu else "peak MiB"
    head = (f"{'variant':<38}{'vectors/s':>11}{'best':>10}{peak_head:>{14 if gpu else 10}}{'above base':>12}"
            f"{'ours/peer':>11}{'peak ratio':>12}{'above-base ratio':>18}{'other load':>12}")
    print(head + "\n" + "-" * len(head))
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<38}  failed: {row['error'].splitlines()[0][:200]}")
            continue
        print(f"{row['variant']:<38}{row['vectors_per_s']:>11,.0f}{row['best_vectors_per_s']:>10,.0f}"
              f"{row[peak]:>{14 if gpu else 10},.0f}{row['above_base_mib']:>12,.0f}"
              f"{row['speed_ratio']:>10.1f}x{row['peak_ratio']:>12.3f}{row['above_base_ratio']:>18.3f}"
              f"{row['other_cores']:>12.2f}")
    if gpu:
        print("\nvectors/s: median over the timed steps (best: fastest step; ratios use the median), CUDA\n"
              "synchronised around each step. GPU peak MiB: torch.cuda.max_memory_allocated of the variant's\n"
              "own process. above base: peak minus the memory allocated after module construction, before\n"
              "the input exists. ratios: ours / that row. (ru_maxrss is in the JSON as peak_mib.)\n"
              "other load: mean CPU cores busy with other processes while the variant was timed.")
        return
    print("\nvectors/s: median over the timed steps (best: fastest step; ratios use the median).\n"
          "peak MiB: ru_maxrss of the variant's own process. above base: peak minus ru_maxrss after\n"
          "imports and module construction, before the input exists. ratios: ours / that row.\n"
          "other load: mean CPU cores busy with other processes while the variant was timed (from\n"
          "/proc/stat); anything well above 0 on a 2-core machine invalidates the timing, so rerun.")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="small batch (4 x 4096), 5 timed steps")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=7)
    parser.add_argument("--attempts", type=int, default=3, help="runs per variant if the machine is busy")
    parser.add_argument("--max-other-load", type=float, default=0.15,
                        help="CPU cores used by other processes above which a run is retried")
    parser.add_argument("--device", default="cpu", help="where the modules and the batch live (cpu, cuda, cuda:1)")
    parser.add_argument("--bf16", action="store_true", help="forward under bfloat16 autocast")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as one JSON object")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.length, args.warmup, args.iters,
                                args.device, args.bf16)))
        return
    if args.quick:
        args.batch, args.iters = 4, 5
    rows = [_run_variant(variant, args) for variant in VARIANTS]
    res = _results(rows, args)
    _report(res)
    if args.json:
        write_json(args.json, res)


if __name__ == "__main__":
    main()
