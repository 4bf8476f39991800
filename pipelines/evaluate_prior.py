"""Held-out NLL of a trained prior in nats and bits per code (non-overlapping windows).

Examples:
  audiolvm evaluate-prior --prior outputs/demo/prior_top
  audiolvm evaluate-prior --prior runs/upsampler --codes codes/vctk --split valid --out nll.json
"""

from __future__ import annotations

import argparse
import json

from audiolvm.builders import load_prior
from audiolvm.core.files import atomic_write_json
from audiolvm.data.codes import CodeStore
from audiolvm.eval.prior import evaluate_prior

HELP = "held-out NLL of a prior (nats and bits per code)"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior", required=True, help="prior run folder (train-prior output)")
    p.add_argument("--codes", default=None, help="codes folder (default: the one the prior trained on)")
    p.add_argument("--split", default="valid", help="split of the codes to score ('all' for every item)")
    p.add_argument("--window", type=int, default=None, help="codes per window (default: the prior's context)")
    p.add_argument("--out", default=None, help="also write the result as JSON here")


def run(args: argparse.Namespace) -> int:
    prior, cfg = load_prior(args.prior)
    store = CodeStore(args.codes or cfg.codes.root)
    window = args.window or (cfg.prior.context if cfg.prior.kind != "pixelcnn1d" else cfg.codes.window)
    result = evaluate_prior(prior, store, cfg.codes.level, window, None if args.split == "all" else args.split,
                            cfg.codes.upper_level, cfg.prior.labels)
    result = {"prior": args.prior, "kind": cfg.prior.kind, "level": cfg.codes.level, "window": window, **result}
    print(json.dumps(result, indent=2))
    if args.out:
        atomic_write_json(args.out, result)
    return 0
