"""Phone and speaker probes of a VQ-VAE's codes (the VQ-VAE paper's phoneme experiment), per level, next
to two baselines with the same number of codes: k-means on MFCCs and the same architecture with a random
encoder (k-means on its features). Needs a phone alignment beside every audio file: same stem with
.TextGrid (MFA layout, tier "phones"), .lab (HTS) or .csv (start,end,label); espeak-ng and ARPAbet labels
are mapped to 39 ARPAbet phones + sil (docs/phones.md). Train/test are the model's own utterance split.

Writes probe.md (one table per level), probe.json and confusion_level{L}.png (the best level).

Examples:
  audiolvm probe --checkpoint outputs/demo/speech_vqvae
  audiolvm probe --checkpoint runs/speech3 --data /corpora/vctk_aligned --levels 0,1 --out probes/s3 --seed 1
  audiolvm probe --checkpoint runs/vctk --max-frames 5000 --no-random   # faster, no random-encoder row
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from audiolvm.builders import build_model, load_model, resolve_checkpoint, split_entries_for
from audiolvm.core.errors import UsageError
from audiolvm.data.phones import PHONES, SOURCES, load_phone_tier
from audiolvm.eval.probe import ProbeOptions, ProbeReport, probe_model

HELP = "phone / speaker probes of the codes vs MFCC k-means and random-encoder baselines"
log = logging.getLogger("audiolvm.probe")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or .safetensors file")
    p.add_argument("--data", default=None, help="aligned corpus folder (default: the one the model was trained on)")
    p.add_argument("--levels", default=None, help="comma-separated levels to probe, e.g. 0,1 (default: all)")
    p.add_argument("--out", default=None, help="output folder (default: <run>/probe)")
    p.add_argument("--seed", type=int, default=0, help="seed for subsampling, k-means, ABX and the random encoder")
    p.add_argument("--max-frames", type=int, default=20000,
                   help="frames used to fit k-means and each linear probe (default: %(default)s)")
    p.add_argument("--phone-source", default="auto", choices=SOURCES, help="label set of the alignments")
    p.add_argument("--unknown-phone", default=None, metavar="LABEL",
                   help="map labels outside the tables to LABEL (e.g. sil) instead of stopping")
    p.add_argument("--no-random", action="store_true", help="skip the random-encoder baseline")
    p.add_argument("--progress", action="store_true", help="show a progress bar")


def parse_levels(text: str | None, num_levels: int) -> list[int]:
    if text is None:
        return list(range(num_levels))
    try:
        levels = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--levels {text!r}: give comma-separated integers such as 0,1") from None
    bad = [lv for lv in levels if not 0 <= lv < num_levels]
    if bad or not levels:
        raise UsageError(f"--levels {text!r}: the model has levels 0..{num_levels - 1}")
    return sorted(set(levels))


def execute(args: argparse.Namespace) -> ProbeReport:
    """``run`` returning the report it wrote (probe.md is its ``to_markdown()``)."""
    model, cfg = load_model(args.checkpoint)
    levels = parse_levels(args.levels, model.num_levels)
    if args.unknown_phone is not None and args.unknown_phone not in PHONES:
        raise UsageError(f"--unknown-phone {args.unknown_phone!r} is not a phone class; use one of {' '.join(PHONES)}")
    reader, selected = split_entries_for(cfg, "all", args.data)
    items = [(entry, split == "train") for entry, split in selected]
    tiers = {e.path: load_phone_tier(e.path, args.phone_source, args.unknown_phone) for e, _ in items}
    random_model = None
    if not args.no_random:
        torch.manual_seed(args.seed)
        random_model = build_model(cfg.model).eval()
    opts = ProbeOptions(seed=args.seed, max_frames=args.max_frames)
    n_test = sum(not t for _, t in items)
    meta = {"checkpoint": str(args.checkpoint), "data": str(args.data or cfg.data.root),
            "utterances": f"{len(items) - n_test} train / {n_test} test", "seed": args.seed}
    report = probe_model(model, reader, items, tiers, levels, cfg.data.sample_rate, random_model, opts,
                         progress=args.progress, meta=meta)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "probe"
    paths = report.write(out)
    print(report.to_markdown())
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return report


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
