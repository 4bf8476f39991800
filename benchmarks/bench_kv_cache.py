"""Benchmark: KV-cached generation against full recomputation for the causal transformer prior.

A 4-layer prior (dim 256, 4 heads, K = 2048 codes) generates greedily near the end of its context.
Both ways start from the same prefix of ``context - tokens - warmup`` random codes, take ``warmup``
untimed steps, then time ``tokens`` steps:

* **cached**: one ``forward_step`` per new code (a single query against the KV cache);
* **recompute**: ``logits(all codes so far)`` at every step, keeping only the last position.

Each context runs in its own subprocess, so ``peak RSS`` (``ru_maxrss``) is that context's own. The
``other load`` column is how many CPU cores other processes kept busy while the context was timed
(from ``/proc/stat``); a context is retried, up to ``--attempts`` times, while it is above
``--max-other-load``, and the quietest attempt is kept. The KV cache memory table is computed from the
cache tensors (``KVCache.nbytes``) for batch 1.

``--device cuda`` runs the model on a GPU (timing synchronised with ``torch.cuda.synchronize``, peak GPU
memory from ``torch.cuda.max_memory_allocated`` beside the RSS), ``--bf16`` runs both ways under
bfloat16 autocast (the cache keeps the weights' dtype), ``--json PATH`` also writes the figures as one
JSON object, and ``--quick`` is a smoke test (context 64, 4 timed tokens, one attempt).

    .venv/bin/python benchmarks/bench_kv_cache.py                    # contexts 512, 2048, 8192
    .venv/bin/python benchmarks/bench_kv_cache.py --contexts 512 --tokens 16
    .venv/bin/python benchmarks/bench_kv_cache.py --quick            # seconds, every code path
    .venv/bin/python benchmarks/bench_kv_cache.py --device cuda --bf16 --json kv_cache.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

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

NUM_CODES, DIM, LAYERS, HEADS = 2048, 256, 4, 4


def _timed(fn, sync=None) -> tuple[float, float]:
    """Run ``fn()``; return (wall seconds, CPU cores kept busy by other processes meanwhile). ``sync``
    (``torch.cuda.synchronize`` on a GPU) brackets the call so that device work is inside the timing."""
    return timed(fn, sync)[1:]


def _time_cached(model, prefix, tokens: int, warmup: int, sync=None) -> tuple[float, float]:
    """Prefill the KV cache with ``prefix : LongTensor[1 x P]`` in one forward, then one step per code."""
    cache = model.make_cache(1)
    model.forward_step(prefix[:, :-1], cache)  # start token + P - 1 codes
    nxt = prefix[:, -1:]  # (1, 1)
    for _ in range(warmup):
        nxt = model.forward_step(nxt, cache)[:, -1].argmax(-1, keepdim=True)  # (1, 1)
    return _timed(lambda: _steps(lambda x: model.forward_step(x, cache)[:, -1], nxt, tokens), sync)


def _time_recompute(model, prefix, tokens: int, warmup: int, sync=None) -> tuple[float, float]:
    """Recompute the logits of every position at each step and keep the last one."""
    import torch

    state = {"seq": prefix}

    def step(_: torch.Tensor) -> torch.Tensor:
        logits = model.logits(state["seq"])[:, -1]  # (1, K): all positions recomputed, the last kept
        state["seq"] = torch.cat([state["seq"], logits.argmax(-1, keepdim=True)], 1)  # (1, L + 1)
        return logits

    _steps(step, prefix[:, -1:], warmup)
    return _timed(lambda: _steps(step, prefix[:, -1:], tokens), sync)


def _worker(context: int, tokens: int, warmup: int, threads: int, device: str = "cpu", bf16: bool = False) -> dict:
    """Time both ways at one context (runs in the subprocess)."""
    import torch

    from audiolvm.models.priors import CausalTransformerPrior

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CausalTransformerPrior(NUM_CODES, context=context, dim=DIM, layers=LAYERS, heads=HEADS).eval().to(device)
    prefix = torch.randint(0, NUM_CODES, (1, context - tokens - warmup)).to(device)  # (1, P)
    sync = device_sync(device)
    with torch.no_grad(), bf16_autocast(device, bf16):
        t_cache, load_cache = _time_cached(model, prefix, tokens, warmup, sync)
        t_full, load_full = _time_recompute(model, prefix, tokens, warmup, sync)
    peak = peak_rss_mib()
    out = {"context": context, "tokens": tokens, "cached_tok_s": tokens / t_cache, "recompute_tok_s": tokens / t_full,
           "other_load": max(load_cache, load_full), "peak_rss_mib": peak, "torch": torch.__version__,
           "device": device, "device_name": device_name(device), "bf16": bf16}
    if (gpu := peak_gpu_mib(device)) is not None:
        out["peak_gpu_mib"] = gpu
    return out


def _steps(step, first, tokens: int) -> None:
    """``tokens`` greedy steps: ``step(last code LongTensor[1 x 1]) -> logits Tensor[1 x K]``."""
    nxt = first
    for _ in range(tokens):
        nxt = step(nxt).argmax(-1, keepdim=True)  # (1, 1)


def _run_context(context: int, args: argparse.Namespace) -> dict:
    """Run one context in a subprocess, retrying while other processes load the machine."""
    best: dict | None = None
    for _ in range(args.attempts):
        cmd = [sys.executable, __file__, "--worker", str(context), "--tokens", str(args.tokens),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device] \
            + (["--bf16"] if args.bf16 else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        if best is None or res["other_load"] < best["other_load"]:
            best = res
        if res["other_load"] <= args.max_other_load:
            break
    assert best is not None
    return best


def _cache_memory_table(lengths: list[int]) -> list[tuple[int, int]]:
    import torch

    from audiolvm.models.priors import CausalTransformerPrior

    model = CausalTransformerPrior(NUM_CODES, context=max(lengths), dim=DIM, layers=LAYERS, heads=HEADS)
    return [(n, model.transformer.make_cache(1, n, dtype=torch.float32).nbytes) for n in lengths]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contexts", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--tokens", type=int, default=32, help="timed new tokens per context")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--max-other-load", type=float, default=0.15)
    p.add_argument("--device", default="cpu", help="where the model and the codes live (cpu, cuda, cuda:1)")
    p.add_argument("--bf16", action="store_true", help="both ways under bfloat16 autocast")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH as one JSON object")
    p.add_argument("--quick", action="store_true", help="context 64, 4 timed tokens, 1 warm-up step, one attempt")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.tokens, args.warmup, args.threads, args.device, args.bf16)))
        return
    if args.quick:
        args.contexts, args.tokens, args.warmup, args.attempts = [64], 4, 1, 1
    cuda = args.device.startswith("cuda")
    where = f"device {args.device}" if cuda else f"{args.threads} threads"
    print(f"{LAYERS} layers, dim {DIM}, {HEADS} heads, K={NUM_CODES}, batch 1, {where}, "
          f"{args.tokens} timed tokens near the end of the context" + (", bf16 autocast" if args.bf16 else ""))
    gpu_head, gpu_rule = (" peak GPU MiB |", "---:|") if cuda else ("", "")
    print(f"| context | cached tok/s | recompute tok/s | speedup | peak RSS MiB |{gpu_head} other load |")
    print(f"|---:|---:|---:|---:|---:|{gpu_rule}---:|")
    rows = []
    for context in args.contexts:
        r = _run_context(context, args)
        r["speedup"] = r["cached_tok_s"] / r["recompute_tok_s"]
        rows.append(r)
        gpu = f" {r['peak_gpu_mib']:,.0f} |" if cuda else ""
        print(f"| {context} | {r['cached_tok_s']:.1f} | {r['recompute_tok_s']:.2f} | "
              f"{r['speedup']:.1f}x | {r['peak_rss_mib']:,.0f} |{gpu} {r['other_load']:.2f} |",
              flush=True)
    if cuda:
        print("peak GPU MiB: torch.cuda.max_memory_allocated of the context's process (both ways).")
    print("\n| sequence length | KV cache bytes (batch 1, float32) | MiB |")
    print("|---:|---:|---:|")
    table = _cache_memory_table([512, 1024, 2048, 4096, 8192])
    for n, nbytes in table:
        print(f"| {n} | {nbytes:,} | {nbytes / 2**20:.1f} |")
    if args.json:
        write_json(args.json, {
            "bench": "kv_cache", "device": args.device, "device_name": rows[0]["device_name"], "bf16": args.bf16,
            "torch": rows[0]["torch"], "threads": args.threads,
            "config": {"num_codes": NUM_CODES, "dim": DIM, "layers": LAYERS, "heads": HEADS, "batch": 1,
                       "tokens": args.tokens, "warmup": args.warmup},
            "contexts": rows,
            "kv_cache_bytes": [{"length": n, "bytes": nbytes, "mib": nbytes / 2**20, "dtype": "float32"}
                               for n, nbytes in table]})


if __name__ == "__main__":
    main()
