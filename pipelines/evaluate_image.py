"""Score a trained image model on its held-out test split and draw image grids.

For VAE-family runs (vae / IWAE / beta-VAE, cvae, m2): the importance-sampled NLL (K draws from q(z|x),
in chunks, float64 logsumexp), the ELBO at beta = 1, bits/dim (= NLL / (D ln 2)), the uniform-model
anchor of the data (D ln 2 for binarized data, D ln L for L levels), active units, the mutual information
I(x; z), and PNG grids of prior samples, a latent traversal and interpolations. Conditional models
(cvae, m2) report -log p(x) marginalised over a uniform p(y) (every class enumerated, so K times the
cost), the conditional -log p(x|y), the accuracy of the Bayes classifier argmax_y p(y|x) of that
enumeration, and class analogies; m2 also reports its classifier q(y|x)'s accuracy.
dSprites runs add MIG and the FactorVAE score. VQ-VAE runs get the test reconstruction error and a
reconstruction grid. Runs of 'audiolvm train-image-prior' (a PixelCNN over a VQ-VAE's code maps) get the
test NLL of the codes (nats per map, bits per code, against the uniform ln K per code), the VQ-VAE's
reconstruction error, and samples.png: prior samples decoded by the VQ-VAE, one row per class when the
prior is class-conditional. Writes eval.json and eval.md (a markdown table) under --out (default <run>/eval).

Examples:
  audiolvm evaluate-image --checkpoint runs/vae_digits
  audiolvm evaluate-image --checkpoint runs/iwae_digits --samples 1000 --out runs/iwae_digits/eval_k1000
  audiolvm evaluate-image --checkpoint runs/pixelcnn_vqvae_digits --temperature 0.9
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import cast

import torch

from audiolvm.builders import (
    build_image_code_data,
    build_image_datasets,
    load_image_model,
    load_image_prior,
    resolve_checkpoint,
    run_kind,
)
from audiolvm.config import ImageExperimentConfig
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.eval.disentangle import FactorSource
from audiolvm.eval.image import (
    ImageEvaluation,
    disentanglement,
    image_prior_metrics,
    metrics_table,
    vae_metrics,
    vqvae_metrics,
)
from audiolvm.eval.image_grids import save_grid
from audiolvm.models.priors.pixelcnn import GatedPixelCNN2d
from audiolvm.models.vae import VAE

HELP = "test NLL (importance sampling), ELBO, bits/dim, active units, MI and image grids of an image model"
log = logging.getLogger("audiolvm.evaluate_image")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder written by 'audiolvm train-image'")
    p.add_argument("--samples", type=int, default=5000, help="importance samples K per test item")
    p.add_argument("--chunk", type=int, default=500, help="samples drawn at once (memory ~ chunk x batch)")
    p.add_argument("--batch-size", type=int, default=100, help="test items per batch")
    p.add_argument("--seed", type=int, default=0, help="seeds every random draw of the evaluation")
    p.add_argument("--disentangle-samples", type=int, default=10000,
                   help="dsprites: factor tuples for MIG and the FactorVAE variance estimate (0 = skip both)")
    p.add_argument("--factor-votes", type=int, default=1000,
                   help="dsprites: FactorVAE training votes of 64 images each (half as many held out)")
    p.add_argument("--temperature", type=float, default=1.0, help="image priors: sampling temperature")
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval)")


def value_levels(cfg: ImageExperimentConfig) -> int | None:
    """Values per dimension of the run's data: 2 when binary, else the likelihood's levels (None: continuous)."""
    if cfg.data.binarize != "none" or cfg.data.dataset == "dsprites" or cfg.model.likelihood == "bernoulli":
        return 2
    return cfg.model.likelihood_args.get("levels")


def evaluate(args: argparse.Namespace) -> ImageEvaluation:
    """The evaluation of the run ``args.checkpoint`` by its kind (image prior, VQ-VAE, VAE family)."""
    if run_kind(args.checkpoint) == "image_prior":
        prior, prior_cfg = load_image_prior(args.checkpoint)
        data = build_image_code_data(prior_cfg, splits=("test",))  # the saved config is already resolved
        return image_prior_metrics(cast(GatedPixelCNN2d, prior), data.codes["test"], data.vqvae, data.images["test"],
                                   vqvae_run=prior_cfg.vqvae,
                                   temperature=args.temperature, seed=args.seed, batch_size=args.batch_size)
    model, cfg = load_image_model(args.checkpoint)
    _, test_ds = build_image_datasets(cfg)
    if cfg.model.kind == "vqvae":
        return vqvae_metrics(model, test_ds, args.batch_size)
    result = vae_metrics(cast(VAE, model), test_ds, kind=cfg.model.kind, levels=value_levels(cfg), samples=args.samples,
                         chunk=args.chunk, batch_size=args.batch_size, seed=args.seed)
    if cfg.data.dataset == "dsprites" and args.disentangle_samples > 0:
        factors = cast(FactorSource, test_ds)  # the dSprites-style set
        result.metrics.update(disentanglement(cast(VAE, model), factors, samples=args.disentangle_samples,
                                              votes=args.factor_votes, seed=args.seed))
    return result


def execute(args: argparse.Namespace) -> ImageEvaluation:
    """``run`` returning the evaluation: writes eval.json, eval.md and the grids under --out, prints the table."""
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate(args)
    for name, grid in result.grids.items():
        save_grid(grid, out / name, upscale=4)
    atomic_write_json(out / "eval.json", result.metrics)
    atomic_write_text(out / "eval.md", metrics_table(result.metrics))
    print(metrics_table(result.metrics))
    log.info("wrote %s, %s and %s", out / "eval.json", out / "eval.md", ", ".join(result.metrics["grids"]))
    return result


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
