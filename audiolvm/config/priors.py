"""The schemas of priors over codes: audio codes on disk (``audiolvm train-prior``); the image family's prior
over a VQ-VAE's code maps is in :mod:`audiolvm.config.image`."""

from __future__ import annotations

from dataclasses import dataclass, field

from audiolvm.config.common import TrainConfig


@dataclass
class CodesDataConfig:
    root: str = "outputs/demo/music_codes"  # a folder written by `audiolvm encode`
    level: int = 0  # the level this prior models (0 = finest)
    upper_level: int | None = None  # upsampler priors: the level whose codes condition this one
    window: int = 256  # codes per training window
    batch_size: int = 16
    num_workers: int = 0
    train_split: str = "train"
    valid_split: str = "valid"


@dataclass
class PriorConfig:
    kind: str = "transformer"  # transformer | upsampler | pixelcnn1d | pixelcnn2d (image code maps)
    dim: int = 256  # transformer width / PixelCNN channels
    layers: int = 4
    heads: int = 4
    context: int = 1024  # transformer context in codes (longer sequences are sampled in windows)
    dropout: float = 0.0
    kernel_size: int = 3  # PixelCNN
    use_labels: bool = True  # condition on the items' speaker / track group (images: their class)
    # filled in from the codes at training time and saved with the checkpoint:
    num_codes: int = 0
    labels: list[str] = field(default_factory=list)
    upsample: int = 1  # hop ratio between upper_level and level
    upper_num_codes: int = 0  # codebook size of upper_level


@dataclass
class PriorExperimentConfig:
    name: str = "prior"
    codes: CodesDataConfig = field(default_factory=CodesDataConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/prior", lr=3e-4))
