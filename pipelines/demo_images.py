"""Demo stage for the image family: train a VAE and an IWAE (k = 5) on the binarized 8x8 digits (the
reference setting of ``configs/image/vae_digits.yaml``), score both on the 500 held-out digits with the
importance-sampled NLL, and draw sample and traversal grids; then train the 2-D VQ-VAE on the 17-level
digits and a class-conditional gated PixelCNN over its 4x4 code maps, and decode prior samples (see
``pipelines/demo.py``).

Outputs under ``<out>/images/``: ``vae_digits/`` and ``iwae_digits/`` run folders (their ``eval/`` holds
eval.json, samples.png, traversal.png, interpolation.png), ``nll.md``, the table of the report, and
``vqvae_digits/`` + ``pixelcnn_vqvae_digits/`` (its ``eval/samples.png``: a row of samples per class).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from audiolvm.core.files import atomic_write_text
from audiolvm_pipelines import evaluate_image, train_image, train_image_prior
from audiolvm_pipelines.demo_common import parsed

log = logging.getLogger("audiolvm.demo")
MODELS = {"vae_digits": "configs/image/vae_digits.yaml", "iwae_digits": "configs/image/iwae_digits.yaml"}
STEPS = 2500  # about 30 s per model on one CPU thread
SAMPLES = 1000  # importance samples per test digit
VQ_STEPS = 1500  # the VQ-VAE; its PixelCNN prior trains for its config's 600 steps
QUIET = ["train.tensorboard=false", "train.progress=false"]


def train_and_score(name: str, out: Path, steps: int, samples: int) -> dict:
    run_dir = out / name
    t0 = time.time()
    trained = train_image.execute(parsed(train_image, MODELS[name], f"train.out_dir={run_dir}", *_schedule(steps)))
    seconds = time.time() - t0
    t0 = time.time()
    scores = evaluate_image.execute(parsed(
        evaluate_image, "--checkpoint", run_dir, "--samples", samples, "--chunk", 500, "--batch-size", 100,
        "--seed", 0, "--disentangle-samples", 0, "--out", run_dir / "eval"))
    return {"name": name, "config": MODELS[name], "k": trained.cfg.model.samples, "steps": steps,
            "train_seconds": seconds, "eval_seconds": time.time() - t0, **scores.metrics}


def _schedule(steps: int) -> list[str]:
    return [f"train.max_steps={steps}", f"train.valid_every={steps}", f"train.ckpt_every={steps}", *QUIET]


def vqvae_and_prior(root: Path, steps: int, prior_steps: int | None = None) -> dict:
    """Train the digits VQ-VAE for ``steps``, then the PixelCNN over its codes (``prior_steps``, default:
    its config's); score the prior and decode its samples."""
    vq_dir, prior_dir = root / "vqvae_digits", root / "pixelcnn_vqvae_digits"
    t0 = time.time()
    train_image.execute(parsed(train_image, "configs/image/vqvae_digits.yaml", f"train.out_dir={vq_dir}",
                               *_schedule(steps)))
    prior = train_image_prior.execute(parsed(train_image_prior, "configs/image/pixelcnn_vqvae_digits.yaml",
                                             f"vqvae={vq_dir}", f"train.out_dir={prior_dir}",
                                             *(_schedule(prior_steps) if prior_steps else QUIET)))
    scores = evaluate_image.execute(parsed(
        evaluate_image, "--checkpoint", prior_dir, "--batch-size", 100, "--seed", 0, "--temperature", 1.0,
        "--out", prior_dir / "eval"))
    return {"steps": steps, "prior_steps": prior.cfg.train.max_steps, "seconds": time.time() - t0, **scores.metrics}


def run_images(out: Path, steps: int | None = None, samples: int = SAMPLES, vq_steps: int | None = None) -> dict:
    """Train, score and draw the models; returns the stage's results (and writes ``images/nll.md``)."""
    root = Path(out) / "images"
    log.info("[images] VAE and IWAE (k=5) on binarized digits, %d steps each", steps or STEPS)
    models = [train_and_score(name, root, steps or STEPS, samples) for name in MODELS]
    log.info("[images] VQ-VAE on 17-level digits and a class-conditional PixelCNN over its codes, %d steps each",
             vq_steps or VQ_STEPS)
    stage = {"models": models, "samples": samples, "binary_anchor": 64 * math.log(2.0),
             "levels17_anchor": 64 * math.log(17.0),
             "vq": vqvae_and_prior(root, vq_steps or VQ_STEPS, prior_steps=vq_steps)}
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
        *vq_lines(stage["vq"]),
    ]


def vq_lines(vq: dict) -> list[str]:
    return [
        "### Image VQ-VAE with a PixelCNN prior", "",
        f"A 2-D VQ-VAE maps the 17-level digits to {vq['code_map']} maps of {vq['num_codes']} codes (test MSE "
        f"{vq['vqvae_mse']:.4f}, {vq['steps']} steps); a class-conditional gated PixelCNN over the codes "
        f"({vq['prior_steps']} steps; {vq['seconds']:.0f} s for both) scores the test codes at "
        f"{vq['code_nll']:.2f} nats per map, "
        f"{vq['bits_per_code']:.2f} bits per code, against {vq['uniform_code_nll']:.2f} nats for uniform codes.", "",
        "Samples (a row per class, decoded by the VQ-VAE): `images/pixelcnn_vqvae_digits/eval/samples.png`.", "",
    ]
