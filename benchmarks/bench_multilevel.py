"""Benchmark: the 3-level (Jukebox-style) audio VQ-VAE on the issue's reference configuration.

Reference: independent levels, hops 8/32/128 with stride-2 convs, width 32, 4 residual blocks per
downsampling stage (dilation growth 3), K=2048, D=64, batch 4 x 2 s at 16 kHz, L2 + multi-resolution
STFT loss, Adam, 2 threads (``configs/music_vqvae.yaml``).

Measured, each variant in its own subprocess so that peak RSS is its own:
  * training throughput (audio-seconds per second) and peak memory, eager and ``torch.compile``d;
  * encode and decode real-time factors (wall / audio; lower is faster) per level and for all levels.
Printed beside the figures the issue reports for Jukebox's own code on this machine (not run here).
On a GPU (``--device cuda``) the timing is synchronised and ``peak MiB`` is
``torch.cuda.max_memory_allocated`` (the RSS stays in the JSON); ``--json PATH`` also writes the figures
as one JSON object.

    .venv/bin/python benchmarks/bench_multilevel.py               # CPU, eager and compiled
    .venv/bin/python benchmarks/bench_multilevel.py --quick       # fewer steps, no compile
    .venv/bin/python benchmarks/bench_multilevel.py --device cuda --bf16   # on a GPU
    .venv/bin/python benchmarks/bench_multilevel.py --device cuda --bf16 --json multilevel.json
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
    device_name,
    device_sync,
    interleaved,
    is_cuda,
    peak_gpu_mib,
    peak_rss_mib,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]
JUKEBOX = {"train_audio_s_per_s": 3.0, "train_peak_gib": 1.9, "encode_rtf_all": 0.09, "decode_rtf_level": 0.02}


def _setup(device: str, threads: int, overrides: list[str] | None = None):  # noqa: ANN202
    sys.path.insert(0, str(ROOT))
    import torch

    from audiolvm.builders import build_model, build_objective
    from audiolvm.config import load_config

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs" / "music_vqvae.yaml", overrides)
    return torch, cfg, build_model(cfg.model).to(device), build_objective(cfg)


def _audio(torch, batch: int, seconds: float, rate: int, device: str):  # noqa: ANN001, ANN202
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * rate)) / rate
    freqs = 110 * 2 ** (torch.randint(0, 36, (batch, 4), generator=g) / 12)  # (B, 4) notes
    x = (0.2 * torch.sin(2 * torch.pi * freqs[..., None] * t)).sum(1, keepdim=True)  # (B, 1, T)
    return (x + 0.01 * torch.randn(x.shape, generator=g)).to(device)


def _our_step(args: argparse.Namespace):  # noqa: ANN202
    """One training step of our model at the reference config (with the worker's overrides), as a callable."""
    torch, cfg, model, objective = _setup(args.device, args.threads, args.override)
    x = _audio(torch, 4, 2.0, cfg.data.sample_rate, args.device)
    step_model = torch.compile(model) if args.compile else model
    return torch, _adam_step(torch, model, lambda: objective(step_model, {"audio": x})["loss"], args)


def _adam_step(torch, model, loss_fn, args: argparse.Namespace):  # noqa: ANN001, ANN202
    """The timed training step, the same for every model: ``loss_fn()`` (under bf16 autocast with ``--bf16``),
    backward, Adam 1e-4."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with bf16_autocast(args.device, args.bf16):
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def worker_train(args: argparse.Namespace) -> dict:
    torch, step = _our_step(args)
    return _timed_steps(torch, args, step)


def _jukebox_vqvae(torch, path: str):  # noqa: ANN001, ANN202
    """Jukebox's own VQ-VAE (openai/jukebox, e.g. @08efbbc) from a local checkout, at the reference config:
    3 levels, downs_t (3, 2, 2) x stride 2 (hops 8/32/128), width 32, depth 4, dilation growth 3, K 2048,
    D 64, commit 0.02, L2 + its multi-resolution spectral loss (Jukebox's defaults: 2048/1024/512).

    Shims let 2020 GPU code run on today's torch and on a CPU without changing its cost: ``torch.stft`` now
    needs ``return_complex``, so Jukebox's ``stft`` returns ``view_as_real`` of the complex result (the
    real/imag layout its ``spec`` takes the norm of); its bottleneck broadcasts / all-reduces through
    ``torch.distributed``, so a one-process gloo group is started; and on a CPU, its codebook buffer's
    hard-coded ``.cuda()`` leaves the tensor where it is."""
    import tempfile
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(path).resolve()))
    import torch.distributed as dist

    if not dist.is_initialized():
        store = Path(tempfile.mkdtemp()) / "store"
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    from jukebox.utils import audio_utils
    from jukebox.vqvae.vqvae import VQVAE

    def stft(sig, hps):  # noqa: ANN001, ANN202
        return torch.view_as_real(torch.stft(sig, hps.n_fft, hps.hop_length, win_length=hps.window_size,
                                             window=torch.hann_window(hps.window_size, device=sig.device),
                                             return_complex=True))

    audio_utils.stft = stft
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the codebook's .cuda() (this process only)
    hps = SimpleNamespace(
        sr=16000, bandwidth={"l1": 1.0, "l2": 1.0, "spec": 1.0}, use_nonrelative_specloss=True, n_fft=1024,
        hop_length=256, window_size=1024, multispec_loss_n_fft=(2048, 1024, 512),
        multispec_loss_hop_length=(240, 120, 50), multispec_loss_window_size=(1200, 600, 240),
        linf_k=2048, lmix_l1=0.0, lmix_l2=0.0, lmix_linf=0.0)
    model = VQVAE(input_shape=(32000, 1), levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), emb_width=64,
                  l_bins=2048, mu=0.99, commit=0.02, spectral=0.0, multispectral=1.0, width=32, depth=4, m_conv=1.0,
                  dilation_growth_rate=3, dilation_cycle=None, reverse_decoder_dilation=True)
    return model, hps


def _jukebox_step(args: argparse.Namespace):  # noqa: ANN202
    """One training step of Jukebox's VQ-VAE in the same loop as :func:`_our_step` (its forward returns the loss)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, hps = _jukebox_vqvae(torch, args.jukebox)
    model = model.to(args.device)
    x = _audio(torch, 4, 2.0, 16000, args.device).transpose(1, 2).contiguous()  # Jukebox takes (B, T, C)
    return torch, _adam_step(torch, model, lambda: model(x, hps, loss_fn="l2")[1], args)


def worker_jukebox(args: argparse.Namespace) -> dict:
    torch, step = _jukebox_step(args)
    return _timed_steps(torch, args, step)


def worker_pair(args: argparse.Namespace) -> dict:
    """Jukebox's step and ours (the config's defaults) alternating in one process, the order flipping every
    step, so both see the same background load: the throughput ratio from medians, robust on a shared machine
    (peak memory needs separate processes: the other workers)."""
    import statistics

    torch, ours = _our_step(args)
    _, theirs = _jukebox_step(args)
    sync = device_sync(args.device)
    times = interleaved({"jukebox": theirs, "ours": ours}, 2 * args.steps, args.warmup, sync)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {"ours_step_s": median["ours"], "jukebox_step_s": median["jukebox"], "steps": len(times["ours"]),
            "throughput_ratio": median["jukebox"] / median["ours"]}


def _timed_steps(torch, args: argparse.Namespace, step) -> dict:  # noqa: ANN001
    for _ in range(args.warmup):
        step()
    _sync(torch, args.device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(torch, args.device)
    seconds = time.perf_counter() - t0
    return {"audio_s_per_s": 4 * 2.0 * args.steps / seconds, "step_s": seconds / args.steps,
            **_peaks(args.device)}


def worker_codec(args: argparse.Namespace) -> dict:
    torch, cfg, model, _ = _setup(args.device, args.threads)
    model.train()
    model(_audio(torch, 4, 1.0, cfg.data.sample_rate, args.device))  # initialise the codebooks
    model.eval()
    seconds = 10.0
    x = _audio(torch, 1, seconds, cfg.data.sample_rate, args.device)
    out = {}
    with torch.no_grad(), bf16_autocast(args.device, args.bf16):
        codes = model.encode(x)
        for i, level in enumerate(model.levels):
            out[f"encode_rtf_l{i}"] = _time(torch, args.device, lambda lv=level: lv.encode(x)) / seconds
            out[f"decode_rtf_l{i}"] = _time(torch, args.device, lambda i=i: model.decode(codes, i)) / seconds
        out["encode_rtf_all"] = _time(torch, args.device, lambda: model.encode(x)) / seconds
        out["decode_rtf_all"] = _time(torch, args.device, lambda: [model.decode(codes, i)
                                                                    for i in range(model.num_levels)]) / seconds
    out.update(_peaks(args.device))
    return out


def _time(torch, device: str, fn, repeats: int = 3) -> float:  # noqa: ANN001
    fn()
    _sync(torch, device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(torch, device)
        best = min(best, time.perf_counter() - t0)
    return best


def _sync(torch, device: str) -> None:  # noqa: ANN001
    if (sync := device_sync(device)) is not None:
        sync()


def _peaks(device: str) -> dict:
    """``peak_mib``: GPU ``max_memory_allocated`` on CUDA, else ``ru_maxrss`` (``peak_mib_source`` says
    which); ``peak_rss_mib`` always, ``peak_gpu_mib`` on CUDA."""
    rss, gpu = peak_rss_mib(), peak_gpu_mib(device)
    out = {"peak_mib": rss if gpu is None else gpu, "peak_mib_source": "rss" if gpu is None else "gpu",
           "peak_rss_mib": rss}
    if gpu is not None:
        out["peak_gpu_mib"] = gpu
    return out


#: (label, extra worker flags): the training variants compared side by side
TRAIN_VARIANTS = [
    ("eager", ["--override", "model.checkpoint_stages=0"]),
    ("eager, ckpt 1 stage", ["--override", "model.checkpoint_stages=1"]),
    ("eager, ckpt 2 stages", ["--override", "model.checkpoint_stages=2"]),
    ("compile, ckpt 2 stages", ["--compile", "--override", "model.checkpoint_stages=2"]),
    ("bf16, ckpt 2 stages", ["--bf16", "--override", "model.checkpoint_stages=2"]),
]


def run_worker(kind: str, args: argparse.Namespace, extra: list[str] | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--device", args.device, "--threads", str(args.threads),
           "--steps", str(args.steps), "--warmup", str(args.warmup)] + (["--bf16"] if args.bf16 else []) \
        + (["--jukebox", args.jukebox] if args.jukebox else []) + (extra or [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=["train", "codec", "jukebox", "pair"])
    p.add_argument("--jukebox", metavar="PATH",
                   help="a local checkout of openai/jukebox: its VQ-VAE trains in the same loop, side by side "
                        "(git clone https://github.com/openai/jukebox; no install needed)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--override", action="append", default=[], help="config key=value for the worker")
    p.add_argument("--quick", action="store_true", help="2 steps, eager variant only")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH as one JSON object")
    args = p.parse_args()
    if args.worker:
        fn = {"train": worker_train, "codec": worker_codec, "jukebox": worker_jukebox, "pair": worker_pair}[args.worker]
        print(json.dumps(fn(args)))
        return
    if args.quick:
        args.steps, args.warmup = 2, 1
    pair = run_worker("pair", args) if args.jukebox else None
    variants = TRAIN_VARIANTS[:1] if args.quick else TRAIN_VARIANTS
    # Jukebox first, one after the other in separate processes (each peak is its own); without a checkout the
    # reference is the figure reported for its code on this kind of machine, and the table says so
    jukebox = run_worker("jukebox", args) if args.jukebox else None
    ref = ({"audio_s_per_s": jukebox["audio_s_per_s"], "peak_mib": jukebox["peak_mib"], "source": "measured"}
           if jukebox else {"audio_s_per_s": JUKEBOX["train_audio_s_per_s"],
                            "peak_mib": JUKEBOX["train_peak_gib"] * 1024, "source": "reported, not run"})
    rows = [(name, run_worker("train", args, extra)) for name, extra in variants]
    eager = rows[0][1]
    codec = run_worker("codec", args)
    cuda = is_cuda(args.device)
    where = f" ({device_name(args.device)})" if cuda else ""
    print(f"device {args.device}{where}, threads {args.threads}, bf16 {args.bf16}, steps {args.steps}")
    peak_head = "GPU peak MiB" if cuda else "peak MiB"
    print(f"{'variant':24s} {'audio-s/s':>10s} {'step s':>8s} {peak_head:>{13 if cuda else 9}s}  "
          f"vs Jukebox ({ref['source']}: {ref['audio_s_per_s']:.2f} audio-s/s, {ref['peak_mib']:.0f} MiB)")
    if jukebox:
        print(f"{'Jukebox (its own code)':24s} {jukebox['audio_s_per_s']:10.2f} {jukebox['step_s']:8.3f} "
              f"{jukebox['peak_mib']:{13 if cuda else 9}.0f}")
    for name, r in rows:
        r["throughput_vs_jukebox"] = r["audio_s_per_s"] / ref["audio_s_per_s"]
        r["memory_vs_jukebox"] = r["peak_mib"] / ref["peak_mib"]
        print(f"{name:24s} {r['audio_s_per_s']:10.2f} {r['step_s']:8.3f} {r['peak_mib']:{13 if cuda else 9}.0f}  "
              f"{r['throughput_vs_jukebox']:.2f}x throughput, {r['memory_vs_jukebox']:.2f}x memory")
    for name, r in rows[1:]:
        r["throughput_vs_eager"] = r["audio_s_per_s"] / eager["audio_s_per_s"]
        r["memory_vs_eager"] = r["peak_mib"] / eager["peak_mib"]
        print(f"{name} / eager: {r['throughput_vs_eager']:.2f}x throughput, "
              f"{r['memory_vs_eager']:.2f}x peak memory")
    if pair:
        print(f"interleaved in one process ({pair['steps']} steps each, medians): "
              f"Jukebox {pair['jukebox_step_s']:.3f} s, ours (config default) {pair['ours_step_s']:.3f} s per step: "
              f"{pair['throughput_ratio']:.2f}x throughput")
    if cuda:
        print("GPU peak MiB: torch.cuda.max_memory_allocated of the variant's own process.")
    print("real-time factors (wall / audio, 10 s clip; lower is faster):")
    for key in sorted(k for k in codec if k.startswith(("encode", "decode"))):
        ref = JUKEBOX["encode_rtf_all"] if key == "encode_rtf_all" else (
            JUKEBOX["decode_rtf_level"] if key.startswith("decode_rtf_l") else None)
        note = f"  (Jukebox {ref}: {ref / codec[key]:.1f}x faster)" if ref else ""
        print(f"  {key:16s} {codec[key]:.4f}{note}")
    print(json.dumps({"train": dict(rows), "codec": codec, "jukebox_train": jukebox, "pair": pair}))
    if args.json:
        import torch

        write_json(args.json, {
            "bench": "multilevel", "device": args.device, "device_name": device_name(args.device),
            "bf16": args.bf16, "torch": torch.__version__, "threads": args.threads, "steps": args.steps,
            "warmup": args.warmup, "quick": args.quick, "train": dict(rows), "codec": codec,
            "jukebox_reported": JUKEBOX, "jukebox_train": jukebox, "pair": pair})


if __name__ == "__main__":
    main()
