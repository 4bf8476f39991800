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

import torch

from audiolvm.builders import load_model, resolve_checkpoint, split_entries_for
from audiolvm.data.codes import CodeItem, CodeWriter, LevelInfo
from audiolvm.eval import iter_audio

HELP = "encode audio to per-level codes on disk"
log = logging.getLogger("audiolvm.encode")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or .safetensors file")
    p.add_argument("--data", default=None, help="corpus folder (default: the one the model was trained on)")
    p.add_argument("--out", required=True, help="output codes folder")
    p.add_argument("--split", default="all", choices=["train", "valid", "all"], help="which split to encode")
    p.add_argument("--shard-frames", type=int, default=4_000_000, help="codes per shard file, per level")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_model(args.checkpoint)
    if not model.discrete:
        raise ValueError(f"{args.checkpoint}: the model has no discrete bottleneck, so there are no codes")
    reader, selected = split_entries_for(cfg, args.split, args.data)
    rate = cfg.data.sample_rate
    levels = [LevelInfo(i, lv.hop, lv.bottleneck.num_codes) for i, lv in enumerate(model.levels)]
    extra = {"checkpoint": str(resolve_checkpoint(args.checkpoint)[0]), "mode": model.mode, "name": cfg.name}
    splits = {e.path: s for e, s in selected}
    with CodeWriter(args.out, levels, rate, args.shard_frames, extra) as writer:
        for entry, wave in iter_audio(reader, [e for e, _ in selected], rate, "encode"):
            codes = model.encode(torch.from_numpy(wave)[None, None])  # [(1, N_l)] per level
            item = CodeItem(id=entry.utterance, speaker=entry.speaker, path=entry.path,
                            split=splits[entry.path], samples=len(wave))
            writer.add(item, [c[0].numpy() for c in codes])
    frames = [sum(it.spans[i][2] for it in writer.items) for i in range(len(levels))]
    log.info("wrote %d items to %s (codes per level: %s); skipped %d unreadable", len(writer.items), args.out,
             frames, sum(reader.skipped.values()))
    return 0
