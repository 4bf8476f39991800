"""Sample audio ancestrally: top-level prior -> each upsampler -> the VQ-VAE decoder.

Examples:
  audiolvm sample --vqvae outputs/demo/music_vqvae --prior outputs/demo/prior_top \\
      --upsamplers outputs/demo/upsampler --seconds 4 --n 2 --speaker organ --out samples/
  audiolvm sample --vqvae V --prior P --prime prompt.wav --seconds 8 --temperature 0.9 --top-p 0.95 --out s/
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import torch

from audiolvm.builders import load_model, load_prior
from audiolvm.core.audio import load_audio, save_audio
from audiolvm.eval import plot_spectrograms

HELP = "sample audio from a prior, upsamplers and a VQ-VAE"
log = logging.getLogger("audiolvm.sample")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vqvae", required=True, help="the VQ-VAE run whose codes the priors model")
    p.add_argument("--prior", required=True, help="top-level prior run (train-prior output)")
    p.add_argument("--upsamplers", default="", help="comma-separated upsampler runs, top-down")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--n", type=int, default=1, help="number of samples")
    p.add_argument("--speaker", default=None, help="label (speaker / track group) to condition on")
    p.add_argument("--prime", default=None, help="audio prompt to continue")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder for WAVs and spectrogram PNGs")


def label_cond(labels: list[str], speaker: str | None, n: int) -> dict:
    if not labels:
        return {}
    if speaker is None:
        log.info("no --speaker given; using label %r (choices: %s)", labels[0], ", ".join(labels))
        speaker = labels[0]
    if speaker not in labels:
        raise KeyError(f"--speaker {speaker!r} is not one of the prior's labels: {', '.join(labels)}")
    return {"label": torch.full((n,), labels.index(speaker), dtype=torch.long)}


def sample_level(prior, n: int, length: int, cond: dict, args: argparse.Namespace,  # noqa: ANN001
                 generator: torch.Generator, prime: torch.Tensor | None) -> torch.Tensor:
    kwargs = {} if prime is None else {"prime": prime[:, :length].expand(n, -1)}
    if prime is not None and not hasattr(prior, "forward_step"):
        raise ValueError(f"{type(prior).__name__} cannot continue a prompt; use a transformer prior with --prime")
    return prior.sample(n, length, cond or None, args.temperature, args.top_k, args.top_p, generator, **kwargs)


def run(args: argparse.Namespace) -> int:
    model, vcfg = load_model(args.vqvae)
    rate, generator = vcfg.data.sample_rate, torch.Generator().manual_seed(args.seed)
    stages = [load_prior(args.prior)] + [load_prior(u) for u in args.upsamplers.split(",") if u]
    primes = None
    if args.prime:
        wave, _ = load_audio(args.prime, sample_rate=rate)
        primes = model.encode(torch.from_numpy(wave)[None, None])  # [(1, N_l)] per level
    codes: list[torch.Tensor | None] = [None] * model.num_levels
    for prior, pcfg in stages:
        level = pcfg.codes.level
        if prior.num_codes != model.levels[level].bottleneck.num_codes:
            raise ValueError(f"prior for level {level} has K={prior.num_codes}, the VQ-VAE's level has "
                             f"K={model.levels[level].bottleneck.num_codes}; train it on this model's codes")
        cond = label_cond(pcfg.prior.labels, args.speaker, args.n)
        if pcfg.codes.upper_level is not None:
            if codes[pcfg.codes.upper_level] is None:
                raise ValueError(f"upsampler for level {level} needs level {pcfg.codes.upper_level} sampled first")
            cond["upper"] = codes[pcfg.codes.upper_level]
        length = math.ceil(args.seconds * rate / model.hops[level])
        codes[level] = sample_level(prior, args.n, length, cond, args, generator,
                                    None if primes is None else primes[level])
        log.info("sampled level %d: %d codes x %d", level, length, args.n)
    lowest = min(i for i, c in enumerate(codes) if c is not None)
    voice = None  # a speaker-conditioned decoder speaks as --speaker (default: the first training speaker)
    if model.speaker is not None:
        voice = model.speaker.ids([args.speaker or model.speaker_names[0]] * args.n)
    audio = model.decode(codes, level=lowest, length=int(args.seconds * rate), speaker=voice)  # (n, 1, T)
    out = Path(args.out)
    for i in range(args.n):
        wave = audio[i, 0].numpy()
        save_audio(out / f"sample_{i:02d}.wav", wave, rate)
        plot_spectrograms({f"sample {i} (level {lowest})": wave}, rate, out / f"sample_{i:02d}.png")
    log.info("wrote %d samples of %.1f s to %s", args.n, args.seconds, out)
    return 0
