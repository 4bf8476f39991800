"""Benchmark: can the data path feed a GPU? Crops per second from a VCTK-layout FLAC corpus against what the
reference speech model (``configs/speech_vqvae.yaml``: batch 16 x 1 s at 16 kHz) consumes.

The corpus is generated: ``--speakers`` x ``--utterances`` FLAC files of ``--seconds`` s at 48 kHz in
``wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac``, as real VCTK 0.92 ships them, so every crop costs a FLAC
decode of the whole file and a 48 -> 16 kHz soxr resample. The project's own ``VCTKReader`` and ``CropDataset``
are timed through a ``DataLoader`` with 0, 2 and 4 worker processes (``--workers``), reading the FLAC files
directly and through the resampled cache (``data.cache: resampled``, built once and timed separately).

The model side, side by side in the same run:

* **measured**: steps/s of the reference model's training step (forward, backward, AdamW) here, on the CPU;
* **GPU estimate**: the step's FLOPs (``torch.utils.flop_counter``, forward x 3 for forward + backward) over an
  assumed sustained ``--gpu-tflops`` (default 40 TFLOP/s, a bf16 convolution-heavy step on an A100/H100-class
  GPU). It is an estimate, stated as such, until ``make gpu-check`` measures steps/s on a real GPU.

The ratio ``crops/s / (steps/s x batch)`` says how many times over the loader can feed the model (the target is
>= 3x). ``other load`` is CPU cores other processes kept busy meanwhile (``/proc/stat``).

    .venv/bin/python benchmarks/bench_loader.py
    .venv/bin/python benchmarks/bench_loader.py --quick --json /tmp/loader.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import cpu_seconds, process_cpu_seconds, write_json  # noqa: E402

from audiolvm.builders import build_model, build_objective  # noqa: E402
from audiolvm.config import load_config  # noqa: E402
from audiolvm.data import CropDataset, VCTKReader  # noqa: E402
from audiolvm.data.cache import CachedReader, ResampledCache  # noqa: E402

CONFIG = "configs/speech_vqvae.yaml"


def make_vctk(root: Path, speakers: int, utterances: int, seconds: float, rate: int = 48000) -> Path:
    """A VCTK 0.92 layout of harmonic tones with noise (FLAC, 24-bit as VCTK ships)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    for s in range(speakers):
        spk = f"p{225 + s}"
        folder = root / "wav48_silence_trimmed" / spk
        folder.mkdir(parents=True, exist_ok=True)
        for u in range(utterances):
            f0 = rng.uniform(90, 250)
            wave = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6))
            wave = wave + 0.01 * rng.standard_normal(len(t))
            sf.write(str(folder / f"{spk}_{u + 1:03d}_mic1.flac"), wave.astype(np.float32), rate, subtype="PCM_24")
    return root


def crops_per_second(dataset: CropDataset, batch: int, workers: int, batches: int) -> tuple[float, float]:
    """(crops/s over ``batches`` batches after one warm-up batch, other load in cores)."""
    draws = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=(batches + 1) * batch,
                                           generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=draws, num_workers=workers,
                                         drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    pids = [w.pid for w in getattr(it, "_workers", [])]
    busy0, own0 = cpu_seconds()
    kids0 = sum(map(process_cpu_seconds, pids))
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    wall = time.perf_counter() - t0
    busy1, own1 = cpu_seconds()
    kids1 = sum(map(process_cpu_seconds, pids))
    del it
    # other load: machine busy time minus this process and its loader workers (each read from /proc)
    other = max(0.0, (busy1 - busy0) - (own1 - own0) - (kids1 - kids0)) / wall
    return batches * batch / wall, other


def model_steps(cfg, steps: int, threads: int) -> tuple[float, float]:  # noqa: ANN001
    """(measured CPU steps/s of the reference training step, FLOPs per step = 3 x forward)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, objective = build_model(cfg.model, cfg.data.sample_rate), build_objective(cfg)
    opt = torch.optim.AdamW(model.parameters(), 3e-4)
    crop = int(cfg.data.crop_seconds * cfg.data.sample_rate)
    batch = {"audio": 0.1 * torch.randn(cfg.data.batch_size, 1, crop)}
    with FlopCounterMode(display=False) as counter:
        objective(model, batch)
    flops = 3.0 * counter.get_total_flops()
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        objective(model, batch)["loss"].backward()
        opt.step()
    return steps / (time.perf_counter() - t0), flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speakers", type=int, default=8)
    p.add_argument("--utterances", type=int, default=24)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each generated utterance")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    p.add_argument("--batches", type=int, default=20, help="timed batches per worker count")
    p.add_argument("--steps", type=int, default=3, help="timed model steps on the CPU")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gpu-tflops", type=float, default=40.0, help="assumed sustained GPU throughput")
    p.add_argument("--model-steps-per-s", type=float, default=None,
                   help="the reference model's measured steps/s on a GPU (from the GPU check): replaces the estimate")
    p.add_argument("--quick", action="store_true", help="a small corpus, 4 batches, 1 model step")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    if args.quick:
        args.speakers, args.utterances, args.batches, args.steps, args.workers = 2, 6, 4, 1, [0, 2]
    cfg = load_config(CONFIG, ["train.progress=false"])
    batch, crop = cfg.data.batch_size, int(cfg.data.crop_seconds * cfg.data.sample_rate)
    steps_cpu, flops = model_steps(cfg, args.steps, args.threads)
    steps_gpu = args.model_steps_per_s or args.gpu_tflops * 1e12 / flops
    gpu_how = "MEASURED by the GPU check" if args.model_steps_per_s else f"ESTIMATE at {args.gpu_tflops:g} TFLOP/s"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_vctk(Path(tmp), args.speakers, args.utterances, args.seconds)
        reader = VCTKReader(root, cache_dir=tmp)
        entries = reader.entries()
        t0 = time.perf_counter()
        cache = ResampledCache.build(reader, entries, cfg.data.sample_rate, root, progress=False)
        build_s = time.perf_counter() - t0
        for source, crops_from in (("decode + resample", reader), ("resampled cache", CachedReader(reader, cache))):
            dataset = CropDataset(crops_from, entries, crop, cfg.data.sample_rate, seed=0)
            for workers in args.workers:
                rate, other = crops_per_second(dataset, batch, workers, args.batches)
                rows.append({"source": source, "workers": workers, "crops_per_s": rate, "other_load": other,
                             "x_cpu_model": rate / (steps_cpu * batch), "x_gpu_estimate": rate / (steps_gpu * batch)})
    print(f"reference model ({CONFIG}): batch {batch} x {cfg.data.crop_seconds:g} s; {flops / 1e9:.1f} GFLOP per "
          f"training step")
    print(f"  consumes {steps_cpu * batch:.1f} crops/s measured here (CPU, {args.threads} threads, "
          f"{steps_cpu:.2f} steps/s)")
    print(f"  consumes {steps_gpu * batch:.0f} crops/s on a GPU ({gpu_how}: {steps_gpu:.1f} steps/s)")
    print(f"\n48 kHz FLAC -> 16 kHz crops, {args.speakers * args.utterances} files of {args.seconds:g} s; building "
          f"the resampled cache took {build_s:.1f} s once\n")
    print("| crops from | loader workers | crops/s | x CPU model | x GPU estimate | other load |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['source']} | {r['workers']} | {r['crops_per_s']:.0f} | {r['x_cpu_model']:.1f} | "
              f"{r['x_gpu_estimate']:.2f} | {r['other_load']:.2f} |")
    if args.json:
        report = {"config": CONFIG, "batch": batch, "cache_build_s": build_s, "gflop_per_step": flops / 1e9,
                  "cpu_steps_per_s": steps_cpu, "gpu_tflops_assumed": args.gpu_tflops, "gpu_steps_per_s": steps_gpu,
                  "gpu_steps_how": gpu_how, "rows": rows, "torch": torch.__version__}
        write_json(args.json, report)


if __name__ == "__main__":
    main()
