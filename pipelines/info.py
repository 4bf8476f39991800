"""Show the environment, a trained checkpoint, or a corpus.

Examples:
  audiolvm info                                  # versions, threads, devices
  audiolvm info --checkpoint runs/speech_vqvae   # config, size, hop, codebook usage
  audiolvm info --checkpoint runs/vae_digits     # any run: audio or image model, prior, classifier
  audiolvm info --data data/speech               # layout, speakers, utterances, hours, skipped files
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from collections import Counter

import torch

import audiolvm

HELP = "show environment, checkpoint or corpus information"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="run folder, checkpoint folder or .safetensors file")
    p.add_argument("--data", help="corpus folder (VCTK, LibriSpeech or plain folder layout)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def environment() -> dict:
    import accelerate

    return {
        "audiolvm": audiolvm.__version__, "python": platform.python_version(), "torch": torch.__version__,
        "accelerate": accelerate.__version__, "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def _audio_details(model, cfg) -> dict:  # noqa: ANN001
    info = {"levels": model.num_levels, "mode": model.mode, "hops": model.hops,
            "frame_rates_hz": [cfg.data.sample_rate / h for h in model.hops],
            "sample_rate": cfg.data.sample_rate, "bottleneck": cfg.model.bottleneck}
    if model.discrete:
        vqs = [level.bottleneck for level in model.levels]
        info["codes"] = [int(vq.num_codes) for vq in vqs]
        info["codes_alive"] = [int((vq.ema_count >= vq.dead_threshold).sum()) for vq in vqs]
    if model.speaker is not None:
        info["speakers"] = model.speaker_names
    if model.pitch is not None:  # the F0 path: extractor and each voice's median F0 (exp of its mean ln F0)
        p = cfg.model.pitch
        info["pitch"] = {"levels": model.pitch_levels, "extractor": p.method, "hop": p.hop,
                         "median_f0_hz": {k: round(math.exp(v[0]), 1) for k, v in p.stats.items()}}
    return info


def _image_details(model, cfg) -> dict:  # noqa: ANN001
    m = cfg.model
    extra = ({"codes": m.vq.num_codes} if m.kind == "vqvae" else
             {"latent_dim": m.latent_dim, "samples_k": m.samples, "likelihood": m.likelihood, "classes": m.num_classes})
    return {"model": m.kind, "image_shape": m.image_shape, "data": cfg.data.dataset, **extra}


def _prior_details(prior, cfg) -> dict:  # noqa: ANN001
    source = cfg.vqvae if hasattr(cfg, "vqvae") else cfg.codes.root
    return {"prior": cfg.prior.kind, "codes": cfg.prior.num_codes, "labels": len(cfg.prior.labels), "source": source}


DETAILS = {"audio": _audio_details, "image": _image_details, "prior": _prior_details, "image_prior": _prior_details,
           "classifier": lambda model, cfg: {"speakers": len(cfg.model.speakers)}}


def checkpoint_info(path: str) -> dict:
    from audiolvm.builders import load_any_run, resolve_checkpoint

    kind, module, cfg = load_any_run(path)
    return {"weights": str(resolve_checkpoint(path)[0]), "run": kind, "name": cfg.name,
            "parameters": sum(p.numel() for p in module.parameters()), **DETAILS[kind](module, cfg)}


def data_info(root: str) -> dict:
    from audiolvm.data import open_corpus

    reader = open_corpus(root)
    entries = reader.entries()
    speakers = Counter(e.speaker for e in entries)
    return {"root": root, "reader": type(reader).__name__, "utterances": len(entries),
            "speakers": len(speakers), "hours": sum(e.duration for e in entries) / 3600,
            "sample_rates": sorted({e.sample_rate for e in entries}),
            "skipped": dict(reader.skipped)}


def run(args: argparse.Namespace) -> int:
    out = {"environment": environment()}
    if args.checkpoint:
        out["checkpoint"] = checkpoint_info(args.checkpoint)
    if args.data:
        out["data"] = data_info(args.data)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for section, values in out.items():
        print(f"[{section}]")
        for k, v in values.items():
            print(f"  {k:14s} {v:.4g}" if isinstance(v, float) else f"  {k:14s} {v}")
    return 0
