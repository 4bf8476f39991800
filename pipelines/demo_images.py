"""Demo stage for the image family: train a VAE and an IWAE (k = 5) on the binarized 8x8 digits (the
reference setting of ``configs/image/vae_digits.yaml``), score both on the 500 held-out digits with the
importance-sampled NLL, and draw sample and traversal grids (see ``pipelines/demo.py``).

Outputs under ``<out>/images/``: ``vae_digits/`` and ``iwae_digits/`` run folders (their ``eval/`` holds
eval.json, samples.png, traversal.png, interpolation.png) and ``nll.md``, the table of the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

from audiolvm.core.files import atomic_write_text
from pipelines import evaluate_image, train_image

log = logging.getLogger("audiolvm.demo")
MODELS = {"vae_digits": "configs/image/vae_digits.yaml", "iwae_digits": "configs/image/iwae_digits.yaml"}
STEPS = 2500  # about 30 s per model on one CPU thread
SAMPLES = 1000  # importance samples per test digit


def train_and_score(name: str, out: Path, steps: int, samples: int) -> dict:
    run_dir = out / name
    overrides = [f"train.out_dir={run_dir}", f"train.max_steps={steps}", f"train.valid_every={steps}",
                 f"train.ckpt_every={steps}", "train.tensorboard=false", "train.progress=false"]
    t0 = time.time()
    train_image.run(argparse.Namespace(config=MODELS[name], overrides=overrides, resume=False, stop_after=None))
    seconds = time.time() - t0
    t0 = time.time()
    evaluate_image.run(argparse.Namespace(checkpoint=str(run_dir), samples=samples, chunk=500, batch_size=100,
                                          seed=0, disentangle_samples=0, out=str(run_dir / "eval")))
    config = json.loads((run_dir / "config.json").read_text())
    scores = json.loads((run_dir / "eval" / "eval.json").read_text())
    return {"name": name, "config": MODELS[name], "k": config["model"]["samples"], "steps": steps,
            "train_seconds": seconds, "eval_seconds": time.time() - t0, **scores}


def run_images(out: Path, steps: int | None = None, samples: int = SAMPLES) -> dict:
    """Train, score and draw both models; returns the stage's results (and writes ``images/nll.md``)."""
    root = Path(out) / "images"
    log.info("[images] VAE and IWAE (k=5) on binarized digits, %d steps each", steps or STEPS)
    models = [train_and_score(name, root, steps or STEPS, samples) for name in MODELS]
    stage = {"models": models, "samples": samples, "binary_anchor": 64 * math.log(2.0),
             "levels17_anchor": 64 * math.log(17.0)}
    atomic_write_text(root / "nll.md", "\n".join(table(stage)) + "\n")
    return stage


def table(stage: dict) -> list[str]:
    lines = [f"| model | k | steps | train s | test NLL (IS, K={stage['samples']}) | -ELBO | bits/dim | "
             "active units | I(x;z) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {m['name']} | {m['k']} | {m['steps']} | {m['train_seconds']:.0f} | {m['nll']:.2f} | "
              f"{m['neg_elbo']:.2f} | {m['bpd']:.3f} | {m['active_units']}/{m['latent_dim']} | "
              f"{m['mutual_information']:.2f} |" for m in stage["models"]]
    return lines


def report_lines(stage: dict) -> list[str]:
    first = stage["models"][0]
    return [
        "## Images: VAE and IWAE on binarized 8x8 digits", "",
        f"MLP 64-200-200-(8 latents), Bernoulli decoder, {first['items']} held-out digits (x/16 > 0.5, seeded "
        "1297/500 split). NLL in nats per image, lower is better:", "", *table(stage), "",
        f"Anchor: a uniform model of binary 8x8 images scores 64 ln 2 = {stage['binary_anchor']:.1f} nats "
        f"(64 ln 17 = {stage['levels17_anchor']:.1f} is the anchor of the 17-level data, not of these).", "",
        "Grids: `images/<model>/eval/samples.png` (prior samples, Bernoulli means) and `traversal.png` "
        "(each row sweeps one latent over [-3, 3] around a test digit's posterior mean).", "",
    ]
