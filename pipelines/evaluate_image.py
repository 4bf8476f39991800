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
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from audiolvm.builders import (
    build_image_code_data,
    build_image_datasets,
    load_image_model,
    load_image_prior,
    resolve_checkpoint,
    run_kind,
)
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.eval.image_grids import (
    analogy_images,
    interpolation_images,
    sample_images,
    save_grid,
    traversal_images,
)
from audiolvm.eval.likelihood import active_units, estimate_nll, mutual_information

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


def uniform_nll(cfg, dims: int) -> float | None:  # noqa: ANN001 - ImageExperimentConfig
    """NLL of the uniform model over the data's values: ``D ln 2`` (binary) or ``D ln L`` (L levels)."""
    if cfg.data.binarize != "none" or cfg.data.dataset == "dsprites" or cfg.model.likelihood == "bernoulli":
        return dims * math.log(2.0)
    levels = cfg.model.likelihood_args.get("levels")
    return dims * math.log(levels) if levels else None


def _loader(ds, batch_size: int) -> DataLoader:  # noqa: ANN001
    return DataLoader(ds, batch_size=batch_size, shuffle=False)


def likelihood_metrics(model, cfg, test_ds, args: argparse.Namespace) -> dict:  # noqa: ANN001
    conditional = cfg.model.kind in ("cvae", "m2")
    label_key = "label" if conditional else None
    loader = _loader(test_ds, args.batch_size)
    estimate = dict(samples=args.samples, chunk_size=args.chunk, seed=args.seed, progress=True)
    # conditional models: -log p(x) with y enumerated under a uniform p(y), comparable to the unconditional ones
    report = estimate_nll(model, loader, enumerate_classes=model.num_classes if conditional else 0, **estimate)
    dims = math.prod(cfg.model.image_shape)
    units, variances = active_units(model, loader, label_key=label_key)
    result = {"kind": cfg.model.kind, "items": report.items, "samples": report.samples, "dims": dims,
              "nll": report.nll, "elbo": report.elbo, "neg_elbo": -report.elbo, "bpd": report.bpd,
              "elbo_bpd": report.elbo_bpd, "uniform_nll": uniform_nll(cfg, dims),
              "active_units": units, "latent_dim": int(variances.numel()),
              "mutual_information": mutual_information(model, loader, seed=args.seed, label_key=label_key)}
    if conditional:
        labels = torch.cat([b["label"] for b in loader])
        given = estimate_nll(model, loader, label_key=label_key, **estimate)
        result.update({"nll_given_label": given.nll, "neg_elbo_given_label": -given.elbo,
                       "bayes_accuracy": (report.predicted == labels).float().mean().item()})
    if cfg.model.kind == "m2":
        with torch.no_grad():
            hits = [(model.classify(b["image"]).argmax(1) == b["label"]).float() for b in loader]
        result["accuracy"] = torch.cat(hits).mean().item()
    return result


def _decoder(model, gen: torch.Generator):  # noqa: ANN001, ANN202
    """``decode(z, y=None) -> images in [0, 1]`` (likelihood mean; ancestral samples for PixelCNN decoders)."""

    def decode(z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if model.autoregressive:
            cond = model.condition(y)
            if cond is not None and cond.shape[0] != z.shape[0]:
                cond = cond.repeat(z.shape[0] // cond.shape[0], 1)
            return model.decoder.sample(z, model.likelihood, cond, gen)
        return model.likelihood.mean(model.decode(z, y))

    return decode


@torch.no_grad()
def write_grids(model, cfg, test_ds, out: Path, seed: int = 0) -> list[str]:  # noqa: ANN001
    """samples.png, traversal.png, interpolation.png (+ analogy.png for conditional models)."""
    gen = torch.Generator().manual_seed(seed)
    decode = _decoder(model, gen)
    batch = next(iter(_loader(test_ds, 16)))
    x, y = batch["image"], batch["label"]
    conditional = model.num_classes > 0
    label = y if conditional else None
    dim = model.latent_shape[0]
    rows = model.num_classes if conditional else 8
    row_labels = torch.arange(rows).repeat_interleave(8) if conditional else None
    save_grid(sample_images(lambda z: decode(z, row_labels), dim, rows, 8, seed), out / "samples.png", upscale=4)
    z0 = model.posterior(x[:1], None if label is None else label[:1])[0].flatten(1)  # (1, D)
    save_grid(traversal_images(lambda z: decode(z, None if label is None else label[:1]), z0[0]),
              out / "traversal.png", upscale=4)
    a, b, ya = _pairs(x, y if conditional else None)
    encode = (lambda v: model.posterior(v, ya)[0].flatten(1))  # noqa: E731 - (P, D) posterior means
    inter_labels = None if ya is None else ya.repeat_interleave(8)
    save_grid(interpolation_images(lambda z: decode(z, inter_labels), encode, a, b, steps=8),
              out / "interpolation.png", upscale=4)
    names = ["samples.png", "traversal.png", "interpolation.png"]
    if conditional:
        z = model.posterior(x[:8], y[:8])[0].flatten(1)  # (8, D)
        save_grid(analogy_images(decode, z, list(range(model.num_classes)), x[:8]), out / "analogy.png", upscale=4)
        names.append("analogy.png")
    return names


def _pairs(x: torch.Tensor, y: torch.Tensor | None, count: int = 4):  # noqa: ANN202
    """``count`` (a, b) pairs of distinct test items (of the same class when ``y`` is given)."""
    if y is None:
        return x[:count], x[count : 2 * count], None
    firsts, seconds = [], []
    for i in range(len(y)):
        partners = [j for j in range(i + 1, len(y)) if y[j] == y[i]]
        if partners and len(firsts) < count:
            firsts.append(i)
            seconds.append(partners[0])
    if not firsts:  # no two items of one class in the batch: pair items with themselves
        firsts = seconds = list(range(min(count, len(y))))
    return x[firsts], x[seconds], y[firsts]


def disentanglement(model, test_ds, num: int, votes: int, seed: int) -> dict:  # noqa: ANN001
    from audiolvm.eval.disentangle import factor_vae_score, mig

    def represent(images: torch.Tensor) -> torch.Tensor:
        return model.posterior(images)[0].flatten(1)

    m = mig(represent, test_ds, num_samples=num, seed=seed)
    f = factor_vae_score(represent, test_ds, num_train=votes, num_eval=max(1, votes // 2),
                         num_variance_estimate=num, seed=seed)
    return {"mig": m.score, "mig_per_factor": m.per_factor.tolist(), "factor_vae": f.score,
            "factor_vae_train": f.train_accuracy}


@torch.no_grad()
def vqvae_metrics(model, test_ds, out: Path, batch_size: int) -> dict:  # noqa: ANN001
    errors, first = [], None
    for batch in _loader(test_ds, batch_size):
        recon = model(batch["image"]).recon
        errors.append((recon - batch["image"]).square().flatten(1).mean(1))
        first = first if first is not None else torch.stack([batch["image"][:16], recon[:16].clamp(0, 1)])
    save_grid(first, out / "reconstructions.png", upscale=4)
    return {"kind": "vqvae", "items": sum(e.numel() for e in errors), "mse": torch.cat(errors).mean().item(),
            "grids": ["reconstructions.png"]}


@torch.no_grad()
def image_prior_metrics(path: str, out: Path, args: argparse.Namespace) -> dict:
    """Test NLL of the codes under a trained image prior, and its samples decoded by the VQ-VAE."""
    prior, cfg = load_image_prior(path)
    data = build_image_code_data(cfg, splits=("test",))  # the saved config is already resolved
    test_codes, vqvae = data.codes["test"], data.vqvae
    conditional = bool(cfg.prior.labels)
    loader = _loader(test_codes, args.batch_size)
    log_p = torch.cat([prior.log_prob(b["codes"], {"label": b["label"]} if conditional else None) for b in loader])
    shape = tuple(test_codes.codes.shape[1:])
    per_map, codes_per_map = -log_p.double().mean().item(), math.prod(shape)
    rows = len(cfg.prior.labels) if conditional else 8
    cond = {"label": torch.arange(rows).repeat_interleave(8)} if conditional else None
    gen = torch.Generator().manual_seed(args.seed)
    sampled = prior.sample(rows * 8, shape, cond, temperature=args.temperature, generator=gen)  # (R*8, h, w)
    images = vqvae.decode_codes(sampled).clamp(0, 1)  # (R*8, C, H, W)
    save_grid(images.reshape(rows, 8, *images.shape[1:]), out / "samples.png", upscale=4)
    recon = vqvae_metrics(vqvae, data.images["test"], out, args.batch_size)
    return {"kind": "pixelcnn2d", "vqvae": cfg.vqvae, "items": len(test_codes), "code_map": "x".join(map(str, shape)),
            "num_codes": cfg.prior.num_codes, "conditional": conditional, "code_nll": per_map,
            "bits_per_code": per_map / (codes_per_map * math.log(2.0)),
            "uniform_code_nll": codes_per_map * math.log(cfg.prior.num_codes), "vqvae_mse": recon["mse"],
            "temperature": args.temperature, "grids": ["samples.png", *recon["grids"]]}


def markdown(result: dict) -> str:
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in result.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return "\n".join(["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoint)[0].parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    if run_kind(args.checkpoint) == "image_prior":
        return write_results(image_prior_metrics(args.checkpoint, out, args), out)
    model, cfg = load_image_model(args.checkpoint)
    _, test_ds = build_image_datasets(cfg)
    if cfg.model.kind == "vqvae":
        result = vqvae_metrics(model, test_ds, out, args.batch_size)
    else:
        result = likelihood_metrics(model, cfg, test_ds, args)
        result["grids"] = write_grids(model, cfg, test_ds, out, args.seed)
        if cfg.data.dataset == "dsprites" and args.disentangle_samples > 0:
            result.update(disentanglement(model, test_ds, args.disentangle_samples,
                                          getattr(args, "factor_votes", 1000), args.seed))
    return write_results(result, out)


def write_results(result: dict, out: Path) -> int:
    atomic_write_json(out / "eval.json", result)
    atomic_write_text(out / "eval.md", markdown(result))
    print(markdown(result))
    log.info("wrote %s, %s and %s", out / "eval.json", out / "eval.md", ", ".join(result["grids"]))
    return 0
