"""Reconstruction quality per level on a held-out split: multi-scale mel distance, multi-resolution
STFT distance, SI-SDR, spectral convergence, codebook perplexity / used / dead codes, and bitrate; for
speech also the F0 error in cents (median and 90th percentile, frames voiced in both), the voicing
decision error, wide-band PESQ and STOI. For an adversarial run, the discriminators' own mean scores on the
originals and on each level's reconstruction (discriminator_scores.json), a sanity figure.

Examples:
  audiolvm evaluate --checkpoint outputs/demo/music_vqvae
  audiolvm evaluate --checkpoint runs/vctk --data /corpora/VCTK-Corpus-0.92 --split valid --out eval/vctk
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from audiolvm.builders import load_discriminators, load_model, resolve_checkpoint, split_entries_for
from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_json
from audiolvm.eval import evaluate_model
from audiolvm.eval.adversarial import discriminator_scores
from audiolvm.eval.evaluate import speech_pitch_settings

HELP = "per-level reconstruction metrics on held-out audio"
log = logging.getLogger("audiolvm.evaluate")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or .safetensors file")
    p.add_argument("--data", default=None, help="corpus folder (default: the one the model was trained on)")
    p.add_argument("--split", default="valid", choices=["train", "valid", "all"], help="which split to score")
    p.add_argument("--limit", type=int, default=None, help="score at most this many items")
    p.add_argument("--out", default=None, help="folder for metrics.csv / metrics.json (default: <run>/eval)")
    p.add_argument("--pitch", choices=["auto", "on", "off"], default="auto",
                   help="F0, voicing, PESQ and STOI columns: auto = on for speech corpora, off for music")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_model(args.checkpoint)
    reader, selected = split_entries_for(cfg, args.split, args.data)
    entries = [e for e, _ in selected][: args.limit]
    if not entries:
        raise UsageError(f"split {args.split!r} of {args.data or cfg.data.root} is empty; try --split all")
    speech = args.pitch == "on" or (args.pitch == "auto" and reader.kind != "music")
    settings = speech_pitch_settings(model, cfg.data.sample_rate) if speech else None
    report = evaluate_model(model, reader, entries, cfg.data.sample_rate, pitch=settings)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "eval"
    report.write_csv(out / "metrics.csv")
    report.write_json(out / "metrics.json")
    print(report.to_table())
    log.info("%d items; wrote %s and %s", len(entries), out / "metrics.csv", out / "metrics.json")
    discriminators = load_discriminators(args.checkpoint)
    if discriminators is not None:  # an adversarial run: its discriminators' verdict on the same items
        scores = discriminator_scores(discriminators, model, reader, entries, cfg.data.sample_rate)
        atomic_write_json(out / "discriminator_scores.json", scores.summary())
        print("\nThe run's discriminators on the same items (higher: judged real):\n" + scores.to_markdown())
    return 0
