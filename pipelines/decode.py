"""Decode codes written by ``audiolvm encode`` back to audio.

Examples:
  audiolvm decode --checkpoint outputs/demo/music_vqvae --codes codes/music --out decoded/ --level 2
  audiolvm decode --checkpoint runs/vctk --codes codes/vctk --out decoded/ --items p225_001,p226_002
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from audiolvm.builders import check_code_levels, load_model
from audiolvm.core.audio import save_audio
from audiolvm.core.errors import UnknownNameError
from audiolvm.data.codes import CodeItem, CodeStore
from audiolvm.models import MultiLevelAutoencoder

HELP = "decode codes on disk back to audio"
log = logging.getLogger("audiolvm.decode")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="the model that wrote the codes")
    p.add_argument("--codes", required=True, help="codes folder written by 'audiolvm encode'")
    p.add_argument("--out", required=True, help="output folder for WAV files")
    p.add_argument("--level", type=int, default=None, help="decode only this level (default: every level)")
    p.add_argument("--items", default=None, help="comma-separated item ids (default: all)")
    p.add_argument("--limit", type=int, default=None, help="decode at most this many items")
    p.add_argument("--speaker", default=None,
                   help="speaker-conditioned models: decode every item as this training speaker (default: its own)")


def decode_item(model: MultiLevelAutoencoder, store: CodeStore, item: CodeItem, level: int,
                speaker: str | None = None) -> torch.Tensor:
    """``Tensor[1 x 1 x samples]`` decoded from level ``level`` (plus the level above if conditioned), in
    ``speaker``'s voice (default: the item's own) when the decoder is speaker-conditioned."""
    codes = [torch.from_numpy(store.codes(item, i).astype("int64"))[None] for i in range(len(store.levels))]
    ids = model.speaker.ids([speaker or item.speaker]) if model.speaker is not None else None
    return model.decode(codes, level=level, length=item.samples or None, speaker=ids)


def check_compatible(model: MultiLevelAutoencoder, store: CodeStore, codes_dir: str) -> None:
    check_code_levels(model, [(lv.hop, lv.num_codes) for lv in store.levels], f"{codes_dir}: codes",
                      "decode with the checkpoint that encoded them")


def run(args: argparse.Namespace) -> int:
    model, _ = load_model(args.checkpoint)
    store = CodeStore(args.codes)
    check_compatible(model, store, args.codes)
    items = store.items
    if args.items:
        wanted = set(args.items.split(","))
        items = [it for it in items if it.id in wanted]
        if missing := wanted - {it.id for it in items}:
            raise UnknownNameError(f"--items: {sorted(missing)} not in {args.codes}/items.jsonl")
    items = items[: args.limit] if args.limit else items
    levels = range(model.num_levels) if args.level is None else [args.level]
    for item in items:
        for level in levels:
            wave = decode_item(model, store, item, level, args.speaker)[0, 0].numpy()
            save_audio(Path(args.out) / f"{item.id}_level{level}.wav", wave, store.sample_rate)
    log.info("decoded %d items x %d levels into %s", len(items), len(levels), args.out)
    return 0
