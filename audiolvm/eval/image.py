"""Evaluation of the image models on their test split: likelihood metrics, VQ-VAE and image-prior metrics, grids.

Every function returns an :class:`ImageEvaluation`: ``metrics``, the flat report (what ``audiolvm
evaluate-image`` writes to ``eval.json``), and ``grids``, image grids by file name (``Tensor[R x C x ch x H x W]``
in [0, 1], for :func:`~audiolvm.eval.image_grids.save_grid`); ``metrics["grids"]`` lists those names. Nothing is
written here. The metric keys:

* VAE family (:func:`vae_metrics`): ``kind``, ``items``, ``samples`` (importance samples K per item), ``dims`` (D),
  ``nll`` (importance-sampled -log p(x), nats), ``elbo`` / ``neg_elbo`` (at beta = 1), ``bpd`` / ``elbo_bpd``
  (bits per dim, = nats / (D ln 2)), ``uniform_nll`` (the uniform model of the data's values, D ln L; None for
  continuous data), ``active_units``, ``latent_dim``, ``mutual_information`` (I(x; z)); conditional models (cvae,
  m2) also ``nll_given_label``, ``neg_elbo_given_label`` and ``bayes_accuracy`` (argmax_y p(y|x) of the
  enumeration); m2 also ``accuracy`` (its classifier q(y|x)). :func:`disentanglement` adds ``mig``,
  ``mig_per_factor``, ``factor_vae``, ``factor_vae_train``.
* image VQ-VAE (:func:`vqvae_metrics`): ``kind``, ``items``, ``mse`` (per-pixel squared error of the reconstructions).
* image prior (:func:`image_prior_metrics`): ``kind``, ``vqvae``, ``items``, ``code_map`` ("HxW"), ``num_codes``,
  ``conditional``, ``code_nll`` (nats per code map), ``bits_per_code``, ``uniform_code_nll`` (HW ln K),
  ``vqvae_mse``, ``temperature``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.utils.data import DataLoader, Dataset

from audiolvm.core.errors import UsageError
from audiolvm.data.codes import CodeMapDataset
from audiolvm.eval.disentangle import FactorSource, factor_vae_score, mig
from audiolvm.eval.image_grids import (
    analogy_images,
    interpolation_images,
    sample_images,
    traversal_images,
)
from audiolvm.eval.likelihood import active_units, estimate_nll, mutual_information
from audiolvm.models.autoencoder import Autoencoder
from audiolvm.models.priors.pixelcnn import GatedPixelCNN2d
from audiolvm.models.vae import VAE

if TYPE_CHECKING:
    from audiolvm.models.m2 import M2
    from audiolvm.models.pixelcnn_decoder import PixelCNNDecoder

CONDITIONAL_KINDS = ("cvae", "m2")
LabelledDecode = Callable[..., torch.Tensor]  # (z [N x D], labels [N] or None) -> images [N x C x H x W]


@dataclass
class ImageEvaluation:
    """``metrics``: the flat report (keys in the module docstring); ``grids``: file name -> image grid."""

    metrics: dict[str, Any]
    grids: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def uniform_nll(dims: int, levels: int | None) -> float | None:
    """NLL of the uniform model over ``levels`` values per dimension: ``D ln L`` (2 for binary data; None when
    ``levels`` is None: continuous data has no such anchor)."""
    return dims * math.log(levels) if levels else None


def _loader(ds: Dataset, batch_size: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False)


def likelihood_metrics(model: VAE, test_ds: Dataset, *, kind: str, levels: int | None, samples: int = 5000,
                       chunk: int = 500, batch_size: int = 100, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """NLL (``samples`` importance samples per item, ``chunk`` at once), ELBO, bits/dim, active units and MI of a
    VAE-family model of ``kind`` (vae, cvae, m2) on ``test_ds``; ``levels``: values per dimension of the data (see
    :func:`uniform_nll`). Conditional models report -log p(x) with y enumerated under a uniform p(y)."""
    conditional = kind in CONDITIONAL_KINDS
    label_key = "label" if conditional else None
    loader = _loader(test_ds, batch_size)
    estimate: dict[str, Any] = dict(samples=samples, chunk_size=chunk, seed=seed, progress=progress)
    report = estimate_nll(model, loader, enumerate_classes=model.num_classes if conditional else 0, **estimate)
    dims = math.prod(test_ds[0]["image"].shape)
    units, variances = active_units(model, loader, label_key=label_key)
    result = {"kind": kind, "items": report.items, "samples": report.samples, "dims": dims,
              "nll": report.nll, "elbo": report.elbo, "neg_elbo": -report.elbo, "bpd": report.bpd,
              "elbo_bpd": report.elbo_bpd, "uniform_nll": uniform_nll(dims, levels),
              "active_units": units, "latent_dim": int(variances.numel()),
              "mutual_information": mutual_information(model, loader, seed=seed, label_key=label_key)}
    if conditional:
        labels = torch.cat([b["label"] for b in loader])
        given = estimate_nll(model, loader, label_key=label_key, **estimate)
        assert report.predicted is not None  # filled by estimate_nll(enumerate_classes > 0)
        result.update({"nll_given_label": given.nll, "neg_elbo_given_label": -given.elbo,
                       "bayes_accuracy": (report.predicted == labels).float().mean().item()})
    if kind == "m2":
        with torch.no_grad():
            hits = [(cast("M2", model).classify(b["image"]).argmax(1) == b["label"]).float() for b in loader]
        result["accuracy"] = torch.cat(hits).mean().item()
    return result


def image_decoder(model: VAE, generator: torch.Generator) -> LabelledDecode:
    """``decode(z, y=None) -> images in [0, 1]``: the likelihood's mean, or an ancestral sample drawn from
    ``generator`` for an autoregressive (PixelCNN) decoder."""

    def decode(z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if model.autoregressive:
            cond = model.condition(y)
            if cond is not None and cond.shape[0] != z.shape[0]:
                cond = cond.repeat(z.shape[0] // cond.shape[0], 1)
            decoder = cast("PixelCNNDecoder", model.decoder)  # the autoregressive decoder
            return decoder.sample(z, model.likelihood, cond, generator)
        return model.likelihood.mean(model.decode(z, y))

    return decode


def _pairs(x: torch.Tensor, y: torch.Tensor | None,
           count: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``count`` (a, b) pairs of distinct test items (of the same class when ``y`` is given), and a's labels."""
    if y is None:
        return x[:count], x[count : 2 * count], None
    firsts: list[int] = []
    seconds: list[int] = []
    for i in range(len(y)):
        partners = [j for j in range(i + 1, len(y)) if y[j] == y[i]]
        if partners and len(firsts) < count:
            firsts.append(i)
            seconds.append(partners[0])
    if not firsts:  # no two items of one class in the batch: pair items with themselves
        firsts = seconds = list(range(min(count, len(y))))
    return x[firsts], x[seconds], y[firsts]


@torch.no_grad()
def image_grids(model: VAE, test_ds: Dataset, seed: int = 0) -> dict[str, torch.Tensor]:
    """``samples.png`` (prior samples; a row per class for conditional models), ``traversal.png``,
    ``interpolation.png`` (+ ``analogy.png`` for conditional models) from the first 16 test items."""
    decode = image_decoder(model, torch.Generator().manual_seed(seed))
    batch = next(iter(_loader(test_ds, 16)))
    x, y = batch["image"], batch["label"]
    conditional = model.num_classes > 0
    label = y if conditional else None
    dim = model.latent_shape[0]
    rows = model.num_classes if conditional else 8
    row_labels = torch.arange(rows).repeat_interleave(8) if conditional else None
    grids = {"samples.png": sample_images(lambda z: decode(z, row_labels), dim, rows, 8, seed)}
    z0 = model.posterior(x[:1], None if label is None else label[:1])[0].flatten(1)  # (1, D)
    grids["traversal.png"] = traversal_images(lambda z: decode(z, None if label is None else label[:1]), z0[0])
    a, b, ya = _pairs(x, y if conditional else None)
    encode = (lambda v: model.posterior(v, ya)[0].flatten(1))  # noqa: E731 - (P, D) posterior means
    inter_labels = None if ya is None else ya.repeat_interleave(8)
    grids["interpolation.png"] = interpolation_images(lambda z: decode(z, inter_labels), encode, a, b, steps=8)
    if conditional:
        z = model.posterior(x[:8], y[:8])[0].flatten(1)  # (8, D)
        grids["analogy.png"] = analogy_images(decode, z, list(range(model.num_classes)), x[:8])
    return grids


def vae_metrics(model: VAE, test_ds: Dataset, *, kind: str, levels: int | None, samples: int = 5000,
                chunk: int = 500, batch_size: int = 100, seed: int = 0, progress: bool = True) -> ImageEvaluation:
    """:func:`likelihood_metrics` and :func:`image_grids` (drawn after the metrics, from ``seed``)."""
    metrics = likelihood_metrics(model, test_ds, kind=kind, levels=levels, samples=samples, chunk=chunk,
                                 batch_size=batch_size, seed=seed, progress=progress)
    grids = image_grids(model, test_ds, seed)
    return ImageEvaluation(metrics | {"grids": list(grids)}, grids)


def disentanglement(model: VAE, factors: FactorSource, *, samples: int = 10000, votes: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """MIG over ``samples`` factor tuples and the FactorVAE score (``votes`` training votes, half as many held
    out, ``samples`` images for the variance estimate) of the posterior means."""

    def represent(images: torch.Tensor) -> torch.Tensor:
        return model.posterior(images)[0].flatten(1)

    m = mig(represent, factors, num_samples=samples, seed=seed)
    f = factor_vae_score(represent, factors, num_train=votes, num_eval=max(1, votes // 2),
                         num_variance_estimate=samples, seed=seed)
    return {"mig": m.score, "mig_per_factor": m.per_factor.tolist(), "factor_vae": f.score,
            "factor_vae_train": f.train_accuracy}


@torch.no_grad()
def vqvae_metrics(model: Autoencoder, test_ds: Dataset, batch_size: int = 100) -> ImageEvaluation:
    """Mean squared error of the test reconstructions, and ``reconstructions.png`` (16 originals above theirs)."""
    errors, first = [], None
    for batch in _loader(test_ds, batch_size):
        recon = model(batch["image"]).recon
        errors.append((recon - batch["image"]).square().flatten(1).mean(1))
        first = first if first is not None else torch.stack([batch["image"][:16], recon[:16].clamp(0, 1)])
    if first is None:
        raise UsageError("vqvae_metrics: the test set is empty")
    grids = {"reconstructions.png": first}
    return ImageEvaluation({"kind": "vqvae", "items": sum(e.numel() for e in errors),
                            "mse": torch.cat(errors).mean().item(), "grids": list(grids)}, grids)


@torch.no_grad()
def image_prior_metrics(prior: GatedPixelCNN2d, test_codes: CodeMapDataset, vqvae: Autoencoder, test_images: Dataset,
                        *, vqvae_run: str = "", temperature: float = 1.0, seed: int = 0,
                        batch_size: int = 100) -> ImageEvaluation:
    """Test NLL of the VQ-VAE's code maps under ``prior``, the VQ-VAE's own :func:`vqvae_metrics`, and
    ``samples.png``: 8 prior samples per row (a row per class for a class-conditional prior) drawn from ``seed``
    at ``temperature`` and decoded by ``vqvae``. ``vqvae_run`` is only recorded (``metrics["vqvae"]``)."""
    conditional = prior.num_labels > 0
    loader = _loader(cast(Dataset, test_codes), batch_size)  # a map-style dataset (__len__, __getitem__)
    log_p = torch.cat([prior.log_prob(b["codes"], {"label": b["label"]} if conditional else None) for b in loader])
    shape = tuple(test_codes.codes.shape[1:])
    per_map, codes_per_map = -log_p.double().mean().item(), math.prod(shape)
    rows = prior.num_labels if conditional else 8
    cond = {"label": torch.arange(rows).repeat_interleave(8)} if conditional else None
    gen = torch.Generator().manual_seed(seed)
    sampled = prior.sample(rows * 8, shape, cond, temperature=temperature, generator=gen)  # (R*8, h, w)
    images = vqvae.decode_codes(sampled).clamp(0, 1)  # (R*8, C, H, W)
    grids = {"samples.png": images.reshape(rows, 8, *images.shape[1:])}  # (R, 8, C, H, W)
    recon = vqvae_metrics(vqvae, test_images, batch_size)
    grids.update(recon.grids)
    return ImageEvaluation({
        "kind": "pixelcnn2d", "vqvae": vqvae_run, "items": len(test_codes), "code_map": "x".join(map(str, shape)),
        "num_codes": prior.num_codes, "conditional": conditional, "code_nll": per_map,
        "bits_per_code": per_map / (codes_per_map * math.log(2.0)),
        "uniform_code_nll": codes_per_map * math.log(prior.num_codes), "vqvae_mse": recon.metrics["mse"],
        "temperature": temperature, "grids": list(grids)}, grids)


def metrics_table(metrics: dict[str, Any]) -> str:
    """A markdown table of the scalar (int, float, str) entries of ``metrics``, in order."""
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in metrics.items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return "\n".join(["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"
