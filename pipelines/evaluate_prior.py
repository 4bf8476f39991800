"""Held-out NLL of a trained prior in nats and bits per code (non-overlapping windows), and optionally the
music measures of what it generates.

With ``--music N`` the prior draws N clips decoded by its level's decoder: a top prior samples from
scratch; an upsampler starts from the real upper-level codes of held-out clips (teacher forcing), so each
stage of the chain is measured on its own. The table also holds the held-out originals, their
reconstructions at the prior's level and white noise (``audiolvm.eval.music``).

Examples:
  audiolvm evaluate-prior --prior outputs/demo/music_prior_top
  audiolvm evaluate-prior --prior outputs/demo/music_upsampler --music 6 --seconds 6 --out up.json
  audiolvm evaluate-prior --prior runs/upsampler --codes codes/vctk --split valid --out nll.json
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from audiolvm.builders import chain_stage, load_model, load_prior, split_entries_for
from audiolvm.core.files import atomic_write_json
from audiolvm.data.codes import CodeStore
from audiolvm.eval.music import chain_waves, music_report
from audiolvm.eval.prior import evaluate_prior
from audiolvm.models.chain import SamplingChain, SamplingSettings

HELP = "held-out NLL of a prior (nats and bits per code), optionally music measures of its samples"
log = logging.getLogger("audiolvm.evaluate_prior")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior", required=True, help="prior run folder (train-prior output)")
    p.add_argument("--codes", default=None, help="codes folder (default: the one the prior trained on)")
    p.add_argument("--split", default="valid", help="split of the codes to score ('all' for every item)")
    p.add_argument("--window", type=int, default=None, help="codes per window (default: the prior's context)")
    p.add_argument("--music", type=int, default=0, metavar="N",
                   help="also draw N clips and score them with the music measures (needs the VQ-VAE)")
    p.add_argument("--vqvae", default=None, help="the VQ-VAE run (default: the checkpoint that wrote the codes)")
    p.add_argument("--seconds", type=float, default=6.0, help="--music: length of each clip")
    p.add_argument("--temperature", type=float, default=1.0, help="--music: sampling temperature")
    p.add_argument("--top-p", type=float, default=None, help="--music: nucleus sampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the result as JSON here")


def music_rows(args: argparse.Namespace, prior, cfg, store: CodeStore) -> dict:  # noqa: ANN001
    model, vcfg = load_model(args.vqvae or store.meta.get("checkpoint", ""))
    reader, held = split_entries_for(vcfg, "valid")
    level, upper = cfg.codes.level, cfg.codes.upper_level
    report = music_report(model, reader, [e for e, _ in held], vcfg.data.sample_rate, [level])
    clips = [report.reference[i % len(report.reference)] for i in range(args.music)]
    labels = [report.labels[i % len(report.reference)] if cfg.prior.labels else None for i in range(args.music)]
    chain = SamplingChain(model, [chain_stage(prior, cfg)], vcfg.data.sample_rate)
    settings = SamplingSettings(args.temperature, None, args.top_p, args.seed)
    if upper is None:
        name = f"prior samples decoded at level {level}"
        waves = chain_waves(chain, labels, args.seconds, settings)
    else:
        name = f"held-out level-{upper} codes -> this upsampler -> level-{level} decoder"
        waves = chain_waves(chain, labels, args.seconds, settings, real=clips, start_level=upper)
    report.add(name, waves)
    print(report.to_table())
    return {"music": report.as_dicts()}


def run(args: argparse.Namespace) -> int:
    prior, cfg = load_prior(args.prior)
    store = CodeStore(args.codes or cfg.codes.root)
    window = args.window or (cfg.prior.context if cfg.prior.kind != "pixelcnn1d" else cfg.codes.window)
    result: dict[str, Any] = evaluate_prior(prior, store, cfg.codes.level, window,
                                            None if args.split == "all" else args.split, cfg.codes.upper_level,
                                            cfg.prior.labels)
    result = {"prior": args.prior, "kind": cfg.prior.kind, "level": cfg.codes.level, "window": window, **result}
    if args.music:
        result |= music_rows(args, prior, cfg, store)
    print(json.dumps({k: v for k, v in result.items() if k != "music"}, indent=2))
    if args.out:
        atomic_write_json(args.out, result)
    return 0
