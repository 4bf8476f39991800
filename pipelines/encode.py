"""Encode a corpus to discrete codes on disk, every level, for prior training.

Examples:
  audiolvm encode --checkpoint outputs/demo/music_vqvae --out codes/music
  audiolvm encode --checkpoint runs/vctk --data /corpora/VCTK-Corpus-0.92 --out codes/vctk --split all

The codes folder holds memory-mappable shards per level, meta.json (hops, codebook sizes, rate,
checkpoint) and items.jsonl (item id, speaker or track, source path, split). See audiolvm/data/codes.py.
"""

from __future__ import annotations

import argparse
import logging

from audiolvm.builders import load_model, resolve_checkpoint, split_entries_for
from audiolvm.core.errors import UsageError
from audiolvm.eval.encode import EncodeSummary, encode_corpus

HELP = "encode audio to per-level codes on disk"
log = logging.getLogger("audiolvm.encode")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or .safetensors file")
    p.add_argument("--data", default=None, help="corpus folder (default: the one the model was trained on)")
    p.add_argument("--out", required=True, help="output codes folder")
    p.add_argument("--split", default="all", choices=["train", "valid", "all"], help="which split to encode")
    p.add_argument("--shard-frames", type=int, default=4_000_000, help="codes per shard file, per level")


def execute(args: argparse.Namespace) -> EncodeSummary:
    """``run`` returning the summary of what was written."""
    model, cfg = load_model(args.checkpoint)
    if not model.discrete:
        raise UsageError(f"{args.checkpoint}: the model has no discrete bottleneck, so there are no codes")
    reader, selected = split_entries_for(cfg, args.split, args.data)
    extra = {"checkpoint": str(resolve_checkpoint(args.checkpoint)[0]), "mode": model.mode, "name": cfg.name}
    summary = encode_corpus(model, reader, selected, args.out, cfg.data.sample_rate, args.shard_frames, extra)
    log.info("wrote %d items to %s (codes per level: %s); skipped %d unreadable", summary.items, args.out,
             summary.frames, summary.skipped)
    return summary


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
