"""Benchmark: real-time factor of ancestral sampling (top prior -> upsampler -> VQ-VAE decoder).

The models are built from the demo configs (``configs/demo/music_vqvae.yaml``, ``prior_top.yaml``,
``upsampler.yaml``) with random weights: the time per token does not depend on what the weights are.
The chain samples ``--seconds`` of 16 kHz audio: level-2 codes (hop 128) from the top prior, level-1
codes (hop 32) from the upsampler given them, then the level-1 decoder. Each prior stage runs twice,
side by side in this process with the same seed:

* **cached**: ``sample(...)``, one KV-cached step per code (the product path);
* **recompute**: ``sample(..., use_cache=False)``, the whole window recomputed at every step.

The real-time factor is wall seconds per second of audio (below 1 is faster than real time). The
``other load`` column counts CPU cores that other processes kept busy meanwhile (``/proc/stat``).
``--dim/--layers/--context`` scale both priors up, ``--device cuda`` runs on a GPU (timing synchronised,
peak memory from ``torch.cuda.max_memory_allocated``), ``--bf16`` samples and decodes under bfloat16
autocast, ``--json PATH`` also writes the figures as one JSON object, and ``--quick`` is a smoke test
(0.25 s of audio).

    .venv/bin/python benchmarks/bench_sampling.py                      # demo size, 8 s, CPU
    .venv/bin/python benchmarks/bench_sampling.py --quick              # 0.25 s, every code path
    .venv/bin/python benchmarks/bench_sampling.py --device cuda --dim 1024 --layers 24 --context 2048 --seconds 20
    .venv/bin/python benchmarks/bench_sampling.py --device cuda --bf16 --json sampling.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import (  # noqa: E402
    bf16_autocast,
    device_name,
    device_sync,
    peak_gpu_mib,
    peak_rss_mib,
    timed,
    write_json,
)

from audiolvm.builders import build_model, build_prior  # noqa: E402
from audiolvm.config import ExperimentConfig, PriorExperimentConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["brass", "organ", "strings", "winds"]  # stands in for the corpus's ensemble labels


def build(args: argparse.Namespace, device: torch.device):  # noqa: ANN201 - (vqvae, top prior, upsampler)
    vcfg = load_config(ROOT / "configs/demo/music_vqvae.yaml", schema=ExperimentConfig)
    torch.manual_seed(0)
    vqvae = build_model(vcfg.model).eval().to(device)
    hops = vqvae.hops
    priors = []
    for name, upper in (("prior_top.yaml", None), ("upsampler.yaml", 2)):
        pcfg = load_config(ROOT / "configs/demo" / name, schema=PriorExperimentConfig).prior
        sizes = {k: v for k, v in (("dim", args.dim), ("layers", args.layers), ("context", args.context),
                                   ("heads", args.heads)) if v is not None}
        level = 2 if upper is None else 1
        pcfg = dataclasses.replace(pcfg, num_codes=vqvae.levels[level].bottleneck.num_codes, labels=LABELS,
                                   upsample=1 if upper is None else hops[upper] // hops[level],
                                   upper_num_codes=0 if upper is None else vqvae.levels[upper].bottleneck.num_codes,
                                   **sizes)
        priors.append((level, build_prior(pcfg).eval().to(device)))
    return vqvae, priors


def chain(vqvae, priors, args: argparse.Namespace, device: torch.device, use_cache: bool) -> list[dict]:  # noqa: ANN001
    """Sample the chain once; one row per stage."""
    rate = 16000
    gen = torch.Generator(device=device).manual_seed(args.seed)
    label = torch.full((args.n,), LABELS.index("organ"), dtype=torch.long, device=device)
    codes: list[torch.Tensor | None] = [None] * vqvae.num_levels
    rows = []
    sync = device_sync(device)
    with torch.no_grad(), bf16_autocast(device, args.bf16):
        for level, prior in priors:
            length = -(-int(args.seconds * rate) // vqvae.hops[level])
            cond = {"label": label}
            if level + 1 < vqvae.num_levels and codes[level + 1] is not None:
                cond["upper"] = codes[level + 1]
            codes[level], wall, load = timed(lambda p=prior, n=length, c=cond: p.sample(
                args.n, n, c, args.temperature, None, None, gen, progress=False, use_cache=use_cache), sync)
            rows.append({"stage": f"level {level} {type(prior).__name__}", "tokens": args.n * length,
                         "wall": wall, "load": load})
        lowest = min(i for i, c in enumerate(codes) if c is not None)
        _, wall, load = timed(lambda: vqvae.decode(codes, level=lowest, length=int(args.seconds * rate)), sync)
        rows.append({"stage": f"decode level {lowest}", "tokens": 0, "wall": wall, "load": load})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0, help="audio seconds per sample")
    p.add_argument("--n", type=int, default=1, help="samples drawn together (batch)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dim", type=int, default=None, help="override both priors' width")
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--context", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-recompute", action="store_true", help="time the cached chain only")
    p.add_argument("--bf16", action="store_true", help="sample and decode under bfloat16 autocast")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH as one JSON object")
    p.add_argument("--quick", action="store_true", help="0.25 s of audio (a smoke test of every code path)")
    args = p.parse_args()
    if args.quick:
        args.seconds = 0.25
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    vqvae, priors = build(args, device)
    top = priors[0][1]
    where = device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"device {device} ({where}), torch {torch.__version__}; priors dim {top.dim}, "
          f"{len(top.transformer.blocks)} layers, context {top.context}; {args.n} x {args.seconds:g} s at 16 kHz"
          + (", bf16 autocast" if args.bf16 else ""))
    warm = argparse.Namespace(**{**vars(args), "seconds": min(0.5, args.seconds)})
    chain(vqvae, priors, warm, device, True)  # warm-up
    ways = {"cached": chain(vqvae, priors, args, device, True)}
    if not args.skip_recompute:
        ways["recompute"] = chain(vqvae, priors, args, device, False)
    audio = args.n * args.seconds
    table = []  # the printed rows, for --json
    print("| stage | way | tokens | wall s | tok/s | real-time factor | other load |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for way, rows in ways.items():
        for r in rows + [{"stage": "**whole chain**", "tokens": sum(r["tokens"] for r in rows),
                          "wall": sum(r["wall"] for r in rows), "load": max(r["load"] for r in rows)}]:
            tps = f"{r['tokens'] / r['wall']:,.0f}" if r["tokens"] else "-"
            print(f"| {r['stage']} | {way} | {r['tokens']:,} | {r['wall']:.2f} | {tps} | "
                  f"{r['wall'] / audio:.3f} | {r['load']:.2f} |")
            table.append({"stage": r["stage"].strip("*"), "way": way, "tokens": r["tokens"], "wall_s": r["wall"],
                          "tok_s": r["tokens"] / r["wall"] if r["tokens"] else None, "rtf": r["wall"] / audio,
                          "other_load": r["load"]})
    speedups = {}
    if "recompute" in ways:
        for i, row in enumerate(ways["cached"][:-1]):
            speedups[row["stage"]] = ways["recompute"][i]["wall"] / row["wall"]
            print(f"{row['stage']}: cache speedup {speedups[row['stage']]:.1f}x")
        total = [sum(r["wall"] for r in rows) for rows in ways.values()]
        speedups["whole chain"] = total[1] / total[0]
        print(f"whole chain: cache speedup {speedups['whole chain']:.1f}x")
    gpu, rss = peak_gpu_mib(device), peak_rss_mib()
    mem = f"{gpu:,.0f} MiB GPU (torch.cuda.max_memory_allocated)" if gpu is not None else f"{rss:,.0f} MiB RSS"
    print(f"peak memory {mem}")
    if args.json:
        write_json(args.json, {
            "bench": "sampling", "device": str(device), "device_name": device_name(device), "bf16": args.bf16,
            "torch": torch.__version__, "threads": args.threads,
            "config": {"seconds": args.seconds, "n": args.n, "sample_rate": 16000, "temperature": args.temperature,
                       "seed": args.seed, "prior_dim": top.dim, "prior_layers": len(top.transformer.blocks),
                       "prior_context": top.context},
            "rows": table, "cache_speedup": speedups, "peak_rss_mib": rss, "peak_gpu_mib": gpu})


if __name__ == "__main__":
    main()
