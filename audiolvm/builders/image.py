"""The image family: config names to data sets, the VAE family and the image VQ-VAE, their objectives, and
a prior over a VQ-VAE run's code maps."""

from __future__ import annotations

import dataclasses
from collections.abc import Sized
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset

from audiolvm.bottleneck.gaussian import GaussianBottleneck
from audiolvm.builders.priors import build_prior
from audiolvm.builders.runs import load_run
from audiolvm.builders.vq import build_vq
from audiolvm.config import (
    ConfigError,
    ImageExperimentConfig,
    ImageModelConfig,
    ImagePriorExperimentConfig,
    ScheduleConfig,
    per_level,
)
from audiolvm.data.codes import CodeMapDataset
from audiolvm.data.images import digits_split, lfw_subset_dataset, mnist_dataset, split_indices
from audiolvm.data.semi import PartlyLabelled, labelled_mask
from audiolvm.data.sprites import DSpritesStyle, index_to_factors
from audiolvm.losses.bounds import SCHEDULES, Schedule, make_schedule
from audiolvm.losses.likelihoods import Likelihood, make_likelihood
from audiolvm.models.autoencoder import Autoencoder
from audiolvm.models.image_vqvae import ImageReconstructionObjective, encode_images, image_vqvae
from audiolvm.models.m2 import M2, M2Objective
from audiolvm.models.pixelcnn_decoder import PixelCNNDecoder
from audiolvm.models.priors import Prior
from audiolvm.models.vae import VAE, ConditionalVAE
from audiolvm.models.vae_objective import VAEObjective
from audiolvm.nn.conv2d import ConvDecoder2d, ConvEncoder2d
from audiolvm.nn.mlp import MLPDecoder, MLPEncoder

IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "dsprites", "lfw")
IMAGE_KINDS = ("vae", "cvae", "m2", "vqvae")


def build_image_datasets(cfg: ImageExperimentConfig) -> tuple[Dataset, Dataset]:
    """(train, test) of ``cfg.data``; the test set is the fixed seeded split (MNIST: its own test file).
    M2 training sets keep the labels of a class-stratified ``loss.labelled`` fraction only."""
    d = cfg.data
    common: dict[str, Any] = {"binarize": d.binarize, "threshold": d.threshold, "seed": cfg.train.seed}
    train: Dataset
    test: Dataset
    if d.dataset == "digits":
        train, test = digits_split(d.num_test, d.split_seed, **common)
    elif d.dataset in ("mnist", "fashion_mnist"):
        if not d.root:
            raise ConfigError(f"data.dataset={d.dataset}: set data.root to a folder of MNIST-format IDX files "
                              "or a .npz (x_train, y_train, x_test, y_test); nothing is downloaded")
        train, test = (mnist_dataset(d.root, split, **common) for split in ("train", "test"))
    elif d.dataset == "lfw":
        train, test = lfw_subset_dataset(**common).split(d.num_test, d.split_seed)
    elif d.dataset == "dsprites":
        if d.binarize == "dynamic":
            raise ConfigError("data.binarize=dynamic: dsprites images are already binary; use none or static")
        pool = DSpritesStyle.subset(d.subset, seed=d.split_seed).indices
        tr, te = split_indices(len(pool), d.num_test, d.split_seed)
        train, test = DSpritesStyle(pool[tr], cache=True), DSpritesStyle(pool[te], cache=True)
    else:
        raise ConfigError(f"data.dataset={d.dataset!r} is unknown; use one of {IMAGE_DATASETS}")
    if cfg.model.kind == "m2":
        train = PartlyLabelled(train, labelled_mask(_image_labels(train), cfg.loss.labelled, d.split_seed))
    return train, test


def _image_labels(ds: Dataset) -> np.ndarray:
    """Class ids, int64 [N] (-1 when unknown)."""
    labels = getattr(ds, "labels", None)
    if labels is not None:
        return labels
    if hasattr(ds, "factor_sizes"):  # dsprites: the shape class
        return index_to_factors(cast(DSpritesStyle, ds).indices)[:, 0]
    return np.full(len(cast(Sized, ds)), -1, dtype=np.int64)


def resolve_image_config(cfg: ImageExperimentConfig, train_ds: Dataset) -> ImageExperimentConfig:
    """Fill ``model.image_shape`` and (cvae / m2) ``model.num_classes`` from the training set."""
    base = getattr(train_ds, "dataset", train_ds)
    shape = [int(s) for s in train_ds[0]["image"].shape]
    num_classes = cfg.model.num_classes
    if cfg.model.kind in ("cvae", "m2"):
        labels = _image_labels(base)
        if (labels < 0).all():
            raise ConfigError(f"model.kind={cfg.model.kind}: data.dataset={cfg.data.dataset} has no labels")
        num_classes = int(labels.max()) + 1
    model = dataclasses.replace(cfg.model, image_shape=shape, num_classes=num_classes)
    return dataclasses.replace(cfg, model=model)


def _image_likelihood(cfg: ImageModelConfig) -> Likelihood:
    args = dict(cfg.likelihood_args)
    if cfg.likelihood == "gaussian" and args.get("scale") == "pixel":
        args.setdefault("shape", tuple(cfg.image_shape))
    try:
        return make_likelihood(cfg.likelihood, channels=cfg.image_shape[0], **args)
    except TypeError as exc:
        raise ConfigError(f"model.likelihood_args={args} do not fit likelihood {cfg.likelihood!r}: {exc}") from exc


def _image_nets(cfg: ImageModelConfig, in_features: int, out_channels: int,
                cond_dim: int) -> tuple[nn.Module, nn.Module]:
    """(encoder -> ``in_features`` vector, decoder vector -> ``out_channels x H x W``), MLP or conv."""
    c, h, w = cfg.image_shape
    d = cfg.latent_dim
    if cfg.encoder == "mlp":
        enc = MLPEncoder((c, h, w), in_features, cfg.hidden, cond_dim=cond_dim, activation=cfg.activation)
        dec = MLPDecoder(d, (out_channels, h, w), list(reversed(cfg.hidden)), cond_dim=cond_dim,
                         activation=cfg.activation)
        return enc, dec
    if cfg.encoder == "conv":
        common: dict[str, Any] = {"width": cfg.width, "factors": cfg.factors, "depth": cfg.depth, "cond_dim": cond_dim}
        return (ConvEncoder2d(c, in_features, input_size=(h, w), **common),
                ConvDecoder2d(d, out_channels, output_size=(h, w), **common))
    raise ConfigError(f"model.encoder={cfg.encoder!r} is unknown; use 'mlp' or 'conv'")


def build_image_model(cfg: ImageModelConfig) -> Autoencoder:
    """The image model of a resolved config (``image_shape`` and ``num_classes`` filled by training): a
    :class:`VAE`, :class:`ConditionalVAE`, :class:`M2` or the VQ-VAE's plain :class:`Autoencoder`."""
    if cfg.kind not in IMAGE_KINDS:
        raise ConfigError(f"model.kind={cfg.kind!r} is unknown; use one of {IMAGE_KINDS}")
    if len(cfg.image_shape) != 3:
        raise ConfigError(f"model.image_shape={cfg.image_shape}: expected [C, H, W]; 'audiolvm train-image' fills "
                          "it from the data")
    if cfg.kind == "vqvae":
        return image_vqvae(build_vq(cfg.vq), cfg.image_shape[0], cfg.width, cfg.factors, cfg.depth)
    cond_dim = cfg.num_classes if cfg.kind in ("cvae", "m2") else 0
    if cond_dim < 1 and cfg.kind != "vae":
        raise ConfigError(f"model.kind={cfg.kind} needs model.num_classes >= 1 (filled from the data)")
    likelihood = _image_likelihood(cfg)
    if cfg.decoder not in ("default", "pixelcnn"):
        raise ConfigError(f"model.decoder={cfg.decoder!r} is unknown; use 'default' or 'pixelcnn'")
    pixel = cfg.decoder == "pixelcnn"
    out_channels = cfg.pixelcnn_cond_channels if pixel else likelihood.param_channels
    encoder, decoder = _image_nets(cfg, 2 * cfg.latent_dim, out_channels, cond_dim)
    if pixel:
        decoder = PixelCNNDecoder(decoder, out_channels, cfg.image_shape[0], likelihood.param_channels,
                                  channels=cfg.pixelcnn_channels, layers=cfg.pixelcnn_layers)
    parts = (encoder, GaussianBottleneck(samples=cfg.samples), decoder, likelihood, (cfg.latent_dim,))
    if cfg.kind == "vae":
        return VAE(*parts)
    if cfg.kind == "cvae":
        return ConditionalVAE(*parts, num_classes=cfg.num_classes)
    classifier, _ = _image_nets(cfg, cfg.num_classes, 1, 0)
    return M2(*parts, num_classes=cfg.num_classes, classifier=classifier)


def _image_schedule(cfg: ScheduleConfig, name: str) -> Schedule | None:
    if cfg.kind == "none":
        return None
    if cfg.kind not in SCHEDULES:
        raise ConfigError(f"loss.{name}.kind={cfg.kind!r} is unknown; use none or one of {sorted(SCHEDULES)}")
    fields = {f.name for f in dataclasses.fields(SCHEDULES[cfg.kind])}
    return make_schedule(cfg.kind, **{k: v for k, v in dataclasses.asdict(cfg).items() if k in fields})


def build_image_objective(cfg: ImageExperimentConfig) -> VAEObjective | M2Objective | ImageReconstructionObjective:
    """``VAEObjective`` (vae, cvae), ``M2Objective`` (m2) or ``ImageReconstructionObjective`` (vqvae)."""
    loss, kind = cfg.loss, cfg.model.kind
    if kind == "vqvae":
        return ImageReconstructionObjective(loss.weights, loss.recon)
    if kind == "m2":
        return M2Objective(loss.alpha)
    if kind not in IMAGE_KINDS:
        raise ConfigError(f"model.kind={kind!r} is unknown; use one of {IMAGE_KINDS}")
    try:
        return VAEObjective(loss.beta, loss.estimator, loss.analytic_kl, loss.free_bits,
                            _image_schedule(loss.warmup, "warmup"), _image_schedule(loss.capacity, "capacity"),
                            conditional=kind == "cvae")
    except ValueError as exc:
        raise ConfigError(f"loss: {exc}") from exc


def load_image_model(path: str | Path) -> tuple[Autoencoder, ImageExperimentConfig]:
    """Rebuild a trained image model from its run folder (config.json + model.safetensors), eval mode."""
    return load_run(path, ImageExperimentConfig, lambda cfg: build_image_model(cfg.model), "image model")


# ---- priors over image code maps
class ImageCodeData(NamedTuple):
    """What :func:`build_image_code_data` returns: the resolved prior config, the VQ-VAE (eval mode) and its
    config, and per split the images and their code maps."""

    cfg: ImagePriorExperimentConfig
    vqvae: Autoencoder
    vqvae_cfg: ImageExperimentConfig
    images: dict[str, Dataset]  # split -> image dataset
    codes: dict[str, CodeMapDataset]  # split -> code maps


def build_image_code_data(cfg: ImagePriorExperimentConfig, splits: tuple[str, ...] = ("train", "test"),
                          batch_size: int = 256) -> ImageCodeData:
    """Load the VQ-VAE run ``cfg.vqvae`` and encode its own ``splits`` to code maps
    (:class:`~audiolvm.data.codes.CodeMapDataset`), ``batch_size`` images at a time. When the training split is
    encoded, the prior's codebook size and class names are filled from it (unconditional when the images carry no
    labels or ``prior.use_labels`` is off); otherwise ``cfg`` must already be resolved (a saved run's config).
    """
    if cfg.prior.kind != "pixelcnn2d":
        raise ConfigError(f"prior.kind={cfg.prior.kind!r}: image code maps are modelled by 'pixelcnn2d'")
    vqvae, vq_cfg = load_image_model(cfg.vqvae)
    if vq_cfg.model.kind != "vqvae":
        raise ConfigError(f"vqvae={cfg.vqvae}: that run is a {vq_cfg.model.kind!r} model; an image prior needs an "
                          "image VQ-VAE run ('audiolvm train-image configs/image/vqvae_digits.yaml')")
    images = dict(zip(("train", "test"), build_image_datasets(vq_cfg), strict=True))
    codes = {split: CodeMapDataset(*encode_images(vqvae, DataLoader(images[split], batch_size, shuffle=False)))
             for split in splits}
    if "train" in codes:
        labels = codes["train"].labels
        use = cfg.prior.use_labels and bool((labels >= 0).any())
        names = [str(c) for c in range(int(labels.max()) + 1)] if use else []
        codebook = per_level(vq_cfg.model.vq.num_codes, 1, "model.vq.num_codes")[0]  # one level
        cfg = dataclasses.replace(cfg, prior=dataclasses.replace(cfg.prior, num_codes=codebook, labels=names))
    return ImageCodeData(cfg, vqvae, vq_cfg, {split: images[split] for split in splits}, codes)


def load_image_prior(path: str | Path) -> tuple[Prior, ImagePriorExperimentConfig]:
    """Rebuild a trained image prior (a ``GatedPixelCNN2d``) from its run folder (config.json +
    model.safetensors), eval mode."""
    return load_run(path, ImagePriorExperimentConfig, lambda cfg: build_prior(cfg.prior), "image prior")
