"""The main job on the embedded corpus: train the speech VQ-VAE, reconstruct held-out utterances,
measure codebook usage over the corpus, and write a report.

Outputs (under --out, default outputs/demo):
  speech_vqvae/                 run folder: checkpoints, model.safetensors, config.json, curves.png
  reconstructions/*.wav, *.png  held-out originals beside their reconstructions, spectrograms
  report.md, report.json        what was trained and how well it does
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from audiolvm.builders import build_corpus, load_model
from audiolvm.config import load_config
from audiolvm.core.audio import load_audio, save_audio
from audiolvm.eval import codebook_usage, plot_spectrograms
from audiolvm.losses import MultiResolutionSTFTLoss
from pipelines import train

HELP = "run the demo pipeline on the embedded corpus"
log = logging.getLogger("audiolvm.demo")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/demo/speech_vqvae.yaml", help="speech VQ-VAE config")
    p.add_argument("--out", default="outputs/demo", help="report folder")
    p.add_argument("--examples", type=int, default=4, help="held-out utterances to reconstruct")
    p.add_argument("overrides", nargs="*", help="key=value overrides for the speech config")


def stage_train(args: argparse.Namespace, run_dir: Path) -> None:
    overrides = [*args.overrides, f"train.out_dir={run_dir}"]
    train.run(argparse.Namespace(config=args.config, overrides=overrides, resume=False, stop_after=None))


def stage_reconstruct(run_dir: Path, out: Path, n: int) -> list[dict]:
    model, cfg = load_model(run_dir)
    reader, _, valid = build_corpus(cfg.data)
    stft = MultiResolutionSTFTLoss(cfg.loss.stft.fft_sizes, cfg.loss.stft.hop_sizes, cfg.loss.stft.win_sizes)
    rows = []
    for entry in valid[:n]:
        wave, rate = load_audio(entry.path, sample_rate=cfg.data.sample_rate)
        x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
        recon = model.reconstruct(x)[0]
        spec = stft(recon, x)
        name = entry.utterance.replace("/", "_")
        save_audio(out / f"{name}_original.wav", wave, rate)
        save_audio(out / f"{name}_reconstruction.wav", recon[0, 0].numpy(), rate)
        plot_spectrograms({"original": wave, "reconstruction": recon[0, 0].numpy()}, rate,
                          out / f"{name}.png", title=f"{name}: {entry.text[:60]}")
        rows.append({"utterance": name, "seconds": len(wave) / rate, "stft_sc": float(spec["sc"]),
                     "stft_logmag": float(spec["logmag"]), "text": entry.text})
    return rows


def stage_usage(run_dir: Path) -> dict:
    model, cfg = load_model(run_dir)
    reader, train_entries, valid_entries = build_corpus(cfg.data)
    codes = []
    for entry in train_entries + valid_entries:
        wave, _ = load_audio(entry.path, sample_rate=cfg.data.sample_rate)
        codes.append(model.encode(torch.from_numpy(wave)[None, None])[0])
    return codebook_usage(codes, model.levels[0].bottleneck.num_codes).as_dict()


def write_report(out: Path, summary: dict) -> None:
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    u = summary["codebook_usage"]
    lines = [
        "# audiolvm demo report", "",
        f"Speech VQ-VAE trained for {summary['train']['steps']} steps in {summary['train']['seconds']:.0f} s "
        f"(hop {summary['train']['hop']}, {summary['train']['frame_rate_hz']:.0f} codes/s).", "",
        "Training curves: `speech_vqvae/curves.png`", "",
        "## Codebook usage over the whole corpus", "",
        f"{u['used']} of {u['codes']} codes used ({100 * u['used_frac']:.1f}%), "
        f"perplexity {u['perplexity']:.1f}, over {u['frames']} frames.", "",
        "## Held-out reconstructions", "",
        "| utterance | seconds | STFT spectral convergence | STFT log-magnitude L1 |", "|---|---|---|---|",
    ]
    lines += [f"| {r['utterance']} | {r['seconds']:.2f} | {r['stft_sc']:.3f} | {r['stft_logmag']:.3f} |"
              for r in summary["reconstructions"]]
    lines += ["", "Audio and spectrograms: `reconstructions/`"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    run_dir = out / "speech_vqvae"
    cfg = load_config(args.config, args.overrides)
    if not Path(cfg.data.root).exists():
        raise FileNotFoundError(f"data.root={cfg.data.root}: corpus not found; generate one with "
                                "'python data_scripts/make_speech_corpus.py --out data/speech'")
    t0 = time.time()
    log.info("[1/3] training the speech VQ-VAE (%d steps)", cfg.train.max_steps)
    stage_train(args, run_dir)
    seconds = time.time() - t0
    log.info("[2/3] reconstructing %d held-out utterances", args.examples)
    rows = stage_reconstruct(run_dir, out / "reconstructions", args.examples)
    log.info("[3/3] codebook usage over the corpus")
    usage = stage_usage(run_dir)
    summary = {"train": {"steps": cfg.train.max_steps, "seconds": seconds, "hop": cfg.model.hop,
                         "frame_rate_hz": cfg.data.sample_rate / cfg.model.hop},
               "codebook_usage": usage, "reconstructions": rows}
    write_report(out, summary)
    print((out / "report.md").read_text())
    return 0
