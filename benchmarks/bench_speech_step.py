"""Benchmark: one training step of the demo's speech VQ-VAE with and without the pitch path (NSF conv decoder or
harmonic-plus-noise synthesizer) and the mel term.

Same batch (8 x 0.5 s of data/speech) for every variant; 3 warm-up and 10 timed steps of forward, backward
and AdamW with two threads. Prints seconds per step and the ratio to today's decoder (waveform L1 + MR-STFT).

    .venv/bin/python benchmarks/bench_speech_step.py
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from audiolvm.builders import build_datasets, build_model, build_objective, with_pitch_stats, with_speakers  # noqa: E402
from audiolvm.config import load_config  # noqa: E402

CONFIG = "configs/demo/speech_vqvae.yaml"
VARIANTS = {  # name: overrides of the demo config
    "today's decoder (waveform L1 + MR-STFT)": ["model.pitch.levels=[]", "loss.weights.mel=0",
                                                "loss.weights.waveform=1"],
    "+ pitch path (NSF)": ["model.pitch.synth=nsf", "model.pitch.harmonics=8", "loss.weights.mel=0",
                           "loss.weights.waveform=1"],
    "today's decoder + mel": ["model.pitch.levels=[]", "loss.weights.waveform=1"],
    "NSF pitch + mel, no waveform L1": ["model.pitch.synth=nsf", "model.pitch.harmonics=8"],
    "harmonic-plus-noise synth + mel (demo)": [],
}


def seconds_per_step(overrides: list[str], steps: int = 10, warmup: int = 3) -> float:
    cfg = load_config(CONFIG, [*overrides, "train.progress=false"])
    train, valid = build_datasets(cfg)
    cfg = with_pitch_stats(with_speakers(cfg, train, valid), train)
    torch.manual_seed(0)
    model, objective = build_model(cfg.model), build_objective(cfg)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    batch = torch.utils.data.default_collate([train[i] for i in range(8)])
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        objective(model, batch)["loss"].backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - start) / steps


def main() -> None:
    torch.set_num_threads(2)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    base = None
    for name, overrides in VARIANTS.items():
        t = seconds_per_step(overrides)
        base = base or t
        print(f"{name:45s} {t:.3f} s/step  {t / base:.2f}x today's decoder", flush=True)


if __name__ == "__main__":
    main()
