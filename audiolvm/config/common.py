"""What every family's config shares: the error type, the vector quantizer and the training settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from audiolvm.core.errors import UsageError

T = TypeVar("T")


class ConfigError(UsageError):
    """A configuration problem; the message names the source, the key and what to do."""


def per_level(value: T | list[T], levels: int, key: str, where: str = "") -> list[T]:
    """A setting given per level or once for all (``value``) as ``levels`` values; ``key`` and ``where`` (what
    sets the number of levels) name it in the error."""
    values = list(value) if isinstance(value, list) else [value]
    if len(values) == 1:
        values = values * levels
    if len(values) != levels:
        raise ConfigError(f"{key} has {len(values)} values for {levels} levels{where}; "
                          "give one value per level, or a single value for all")
    return values


@dataclass
class VQConfig:
    """The EMA vector quantizer of either family. ``num_codes`` and ``beta`` take one value per level or a
    single value for all; the audio family writes lists (its defaults below), the image family single values
    (``ImageModelConfig.vq``: 64 codes of 16 dims)."""

    num_codes: int | list[int] = field(default_factory=lambda: [2048])
    dim: int = 64
    beta: float | list[float] = field(default_factory=lambda: [0.25])  # commitment weight
    decay: float = 0.99
    dead_threshold: float = 1.0
    init: str = "first_batch"  # first_batch | kmeans


@dataclass
class OptimGroupConfig:
    """Optimizer settings of one trained module besides the model (a discriminator, ``train.groups.<name>``);
    an unset field takes the ``train`` value of the same name."""

    optimizer: str | None = None
    lr: float | None = None
    betas: list[float] | None = None
    weight_decay: float | None = None
    warmup_steps: int | None = None
    schedule: str | None = None
    min_lr_ratio: float | None = None
    grad_clip: float | None = None


@dataclass
class TrainConfig:
    out_dir: str = "runs/speech_vqvae"
    max_steps: int = 2000
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9)
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])  # adamw
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # 0 disables
    grad_accum: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    log_every: int = 10
    valid_every: int = 200
    valid_batches: int = 8
    ckpt_every: int = 500
    keep_last: int = 3
    seed: int = 0
    max_nonfinite: int = 5  # consecutive non-finite losses before the run stops
    # a checkpoint is "good" when its weights are finite and the first loss computed with them is at most
    # this many times the median of the recent losses; a diverged run names the newest good one
    divergence_ratio: float = 10.0
    # on divergence, restart from the last good checkpoint with the learning rate times rollback_lr_scale, up to
    # this many times per run (0: stop and name the last good checkpoint instead)
    rollbacks: int = 0
    rollback_lr_scale: float = 0.1
    # intra-op CPU threads: auto (the cores other processes leave free when training starts, kept for the run
    # and on resume), follow (re-decided at every log point; numerics then depend on the load), or a number
    threads: str = "auto"
    # torch.compile the step function (forward and loss; backward through AOTAutograd). Pays where a step is many
    # small ops (the image VAEs on a CPU, any model on a GPU); the first steps are slower while it compiles
    compile: bool = False
    # modules trained besides the model (a step function with phases, e.g. discriminators): their optimizer
    # settings by module name, each field defaulting to the train value above (e.g. groups.disc.lr: 1e-4)
    groups: dict[str, OptimGroupConfig] = field(default_factory=dict)
    # the order in which the phases' optimizers step within a step ([] = the step function's own order,
    # discriminator before model for adversarial training)
    update_order: list[str] = field(default_factory=list)
    # warm start: a run folder whose model.safetensors (and the saved weights of any module trained beside it,
    # e.g. disc.safetensors) initialise a new run; ignored when --resume finds a checkpoint
    init_from: str = ""
    # exponential moving average of the model's weights (0 = off, e.g. 0.999): what model.safetensors holds,
    # so evaluation and inference use it; validation during training sees the live weights
    ema: float = 0.0
    tensorboard: bool = True
    progress: bool = True
