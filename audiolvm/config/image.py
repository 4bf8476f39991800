"""The image family's schemas: image data sets, the VAE family and the image VQ-VAE, and a prior over its code maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audiolvm.config.common import TrainConfig, VQConfig
from audiolvm.config.priors import PriorConfig


@dataclass
class ImageDataConfig:
    """An offline image set, its binarization and a seeded train/test split."""

    dataset: str = "digits"  # digits | mnist | fashion_mnist | dsprites | lfw
    root: str = ""  # mnist / fashion_mnist: a folder of IDX files or a .npz (nothing is downloaded)
    binarize: str = "static"  # none | static (p > threshold) | dynamic (Bernoulli(p) per epoch)
    threshold: float = 0.5  # static binarization of p = raw / max (digits: x/16 > 0.5)
    num_test: int = 500  # held-out items (digits, lfw, dsprites); mnist uses its own test file
    split_seed: int = 1297
    subset: int = 20000  # dsprites: images drawn from the 737,280 grid
    batch_size: int = 100
    num_workers: int = 0


@dataclass
class ScheduleConfig:
    """A KL-weight warm-up or capacity schedule over training steps (``audiolvm.losses.bounds``)."""

    kind: str = "none"  # none | constant | linear | cyclical
    value: float = 1.0  # constant
    start: float = 0.0  # linear: start -> end over `steps` after `delay`
    end: float = 1.0
    steps: int = 10000
    delay: int = 0
    period: int = 10000  # cyclical: rise low -> high over ramp * period, hold high
    ramp: float = 0.5
    low: float = 0.0
    high: float = 1.0
    cycles: int | None = None


@dataclass
class ImageModelConfig:
    kind: str = "vae"  # vae | cvae | m2 | vqvae
    encoder: str = "mlp"  # mlp | conv (vqvae is always conv)
    hidden: list[int] = field(default_factory=lambda: [200, 200])  # MLP encoder sizes (decoder mirrors them)
    activation: str = "relu"
    width: int = 32  # conv channels
    factors: list[int] = field(default_factory=lambda: [2])  # conv down/upsampling factors
    depth: int = 1  # conv residual blocks
    latent_dim: int = 8
    samples: int = 1  # k posterior samples (k > 1: IWAE)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | logistic | categorical
    likelihood_args: dict[str, Any] = field(default_factory=dict)  # e.g. {levels: 17} (channels are filled in)
    decoder: str = "default"  # default | pixelcnn (autoregressive p(x|z))
    pixelcnn_channels: int = 32
    pixelcnn_layers: int = 4
    pixelcnn_cond_channels: int = 8
    num_classes: int = 0  # cvae / m2: filled from the data at train time
    image_shape: list[int] = field(default_factory=list)  # (C, H, W): filled from the data at train time
    vq: VQConfig = field(default_factory=lambda: VQConfig(num_codes=64, dim=16, beta=0.25))  # one level


@dataclass
class ImageLossConfig:
    beta: float = 1.0
    estimator: str = "standard"  # standard | stl | dreg
    analytic_kl: bool = True
    free_bits: float = 0.0  # nats per latent dim (0 = off)
    warmup: ScheduleConfig = field(default_factory=ScheduleConfig)  # multiplies beta
    capacity: ScheduleConfig = field(default_factory=ScheduleConfig)  # target KL C(t) in nats
    alpha: float = 1.0  # m2: classifier weight
    labelled: float = 0.1  # m2: fraction of training items that keep their label
    recon: str = "mse"  # vqvae: mse | l1
    weights: dict[str, float] = field(default_factory=dict)  # vqvae: e.g. {vq/commitment: 1.0}


@dataclass
class ImageExperimentConfig:
    name: str = "vae_digits"
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    loss: ImageLossConfig = field(default_factory=ImageLossConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out_dir="runs/vae_digits", max_steps=5000, lr=1e-3, warmup_steps=0, schedule="constant", grad_clip=0.0,
        valid_every=500, ckpt_every=1000))


@dataclass
class ImagePriorExperimentConfig:
    """A prior over the code maps of a trained image VQ-VAE (``audiolvm train-image-prior``)."""

    name: str = "pixelcnn_vqvae_digits"
    vqvae: str = "runs/vqvae_digits"  # run folder of an image VQ-VAE ('audiolvm train-image', model.kind=vqvae)
    batch_size: int = 64
    num_workers: int = 0
    prior: PriorConfig = field(default_factory=lambda: PriorConfig(kind="pixelcnn2d", dim=32, layers=3))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        out_dir="runs/pixelcnn_vqvae_digits", max_steps=600, lr=1e-3, warmup_steps=0, schedule="cosine",
        valid_every=100, ckpt_every=600))
