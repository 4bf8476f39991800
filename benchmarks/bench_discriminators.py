"""Benchmark: what each audio discriminator costs per training step, beside the generator step it would join.

For each discriminator in ``audiolvm.nn.discriminators`` (default widths), one adversarial step's worth of work
on a batch of real and generated waveforms: the discriminator's forward on both, the hinge D loss and its
backward (the D step), then the forward on the fake with the generator hinge + feature matching and its backward
(the G step's discriminator part). Printed as milliseconds and as a ratio to the generator's own training step
(the demo speech VQ-VAE, ``configs/demo/speech_vqvae.yaml``, forward + backward + AdamW on the same batch), run
interleaved in the same process. Peak memory: the bytes of tensors autograd saves for backward in the D step
(``saved_tensors_hooks``), which is what the discriminator adds to a step's peak.

    .venv/bin/python benchmarks/bench_discriminators.py                 # batch 8 x 0.5 s at 16 kHz, 2 threads
    .venv/bin/python benchmarks/bench_discriminators.py --seconds 1.0 --batch 16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import interleaved  # noqa: E402

from audiolvm.builders import build_model, build_objective  # noqa: E402
from audiolvm.config import load_config  # noqa: E402
from audiolvm.losses.adversarial import feature_matching, hinge_d_loss, hinge_g_loss  # noqa: E402
from audiolvm.nn import discriminators as D  # noqa: E402

DISCRIMINATORS = {
    "multi-period (HiFi-GAN)": D.MultiPeriodDiscriminator,
    "multi-scale waveform (MelGAN)": D.MultiScaleWaveformDiscriminator,
    "multi-scale STFT (EnCodec)": D.MultiScaleSTFTDiscriminator,
    "multi-band STFT (DAC)": D.MultiBandSTFTDiscriminator,
}


def saved_mib(fn) -> float:  # noqa: ANN001
    """MiB of tensors saved for backward while ``fn()`` builds its graph (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    loss.backward()
    return sum(seen.values()) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # the demo's speech VQ-VAE without its speaker table and F0 input (the batch here is plain audio)
    cfg = load_config(ROOT / "configs" / "demo" / "speech_vqvae.yaml",
                      ["model.pitch.levels=[]", "model.speaker.levels=[]"])
    model, objective = build_model(cfg.model), build_objective(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = int(args.seconds * cfg.data.sample_rate)
    real = 0.3 * torch.randn(args.batch, 1, n)

    def generator_step() -> None:
        loss = objective(model, {"audio": real})["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    fake = real + 0.05 * torch.randn_like(real)
    steps = {"generator step (demo speech VQ-VAE)": generator_step}
    memory = {}
    for name, cls in DISCRIMINATORS.items():
        disc = cls()
        fake_g = fake.clone().requires_grad_(True)

        def d_loss(disc=disc) -> torch.Tensor:
            outs_r, outs_f = disc(real), disc(fake.detach())
            return hinge_d_loss([lo for lo, _ in outs_r], [lo for lo, _ in outs_f])

        def adversarial(disc=disc, fake_g=fake_g, d_loss=d_loss) -> None:
            d_loss().backward()
            outs_r, outs_f = disc(real), disc(fake_g)
            feats = feature_matching([f for _, f in outs_r], [f for _, f in outs_f])
            g = hinge_g_loss([lo for lo, _ in outs_f]) + feats
            g.backward()

        steps[name] = adversarial
        memory[name] = saved_mib(d_loss)
    times = interleaved(steps, args.steps, warmup=2)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    gen = statistics.median(times["generator step (demo speech VQ-VAE)"])
    print(f"batch {args.batch} x {args.seconds} s at {cfg.data.sample_rate} Hz, {args.threads} threads, "
          f"medians of {args.steps} interleaved steps; load average {load}")
    print(f"{'':38s} {'ms/step':>8s} {'x generator step':>17s} {'D-step saved MiB':>17s}")
    for name, t in times.items():
        med = statistics.median(t)
        mem = f"{memory[name]:17.1f}" if name in memory else f"{'-':>17s}"
        print(f"{name:38s} {med * 1000:8.1f} {med / gen:17.2f} {mem}")


if __name__ == "__main__":
    main()
