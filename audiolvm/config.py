"""Typed configuration schemas and YAML loading with includes and ``key=value`` overrides.

A YAML file may name a ``base:`` file (or a list of them), resolved relative to itself, that it
overrides; so ``configs/tiny/speech_vqvae.yaml`` holds only the few keys that differ from
``configs/speech_vqvae.yaml``. Unknown keys are errors that name the file, the key and the
closest valid key. This module imports nothing from the rest of the package.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration problem; the message names the source, the key and what to do."""


@dataclass
class DataConfig:
    root: str = "data/speech"  # corpus folder (VCTK, LibriSpeech or plain folder layout)
    kind: str = "auto"  # auto | vctk | librispeech | music | folder
    sample_rate: int = 16000
    crop_seconds: float = 1.0
    valid_fraction: float = 0.05
    split_by: str = "utterance"  # utterance | speaker
    batch_size: int = 8
    num_workers: int = 0
    split_seed: int = 0
    # whole speakers left out of training and validation (chosen by split_seed), for conversion to voices the
    # model has never heard (`audiolvm evaluate-vc --unseen`, `audiolvm enroll`); 0 = none
    unseen_speakers: int = 0
    # resampled: files at another rate than sample_rate are decoded and resampled once into an int16 cache beside
    # the corpus (audiolvm.data.cache), so a crop is a memory copy; none: every crop decodes and resamples its file
    cache: str = "none"


@dataclass
class VQConfig:
    num_codes: list[int] = field(default_factory=lambda: [2048])  # per level, or one value for all levels
    dim: int = 64
    beta: list[float] = field(default_factory=lambda: [0.25])  # commitment weight, per level or one for all
    decay: float = 0.99
    dead_threshold: float = 1.0
    init: str = "first_batch"  # first_batch | kmeans


@dataclass
class SpeakerConfig:
    """Speaker-conditioned decoding (voice conversion): a global speaker vector in every decoder stage."""

    levels: list[int] = field(default_factory=list)  # decoder levels that take the speaker; [] = off
    dim: int = 64  # speaker embedding width
    mode: str = "film"  # film (scale + shift per channel) | concat (concatenate, 1x1 conv)
    encoder: bool = False  # also train a speaker encoder (log-mel -> vector) for unseen reference clips
    encoder_mix: float = 0.5  # fraction of training items decoded with the encoder's vector, not the table's
    # (the encoder's matching loss is weighted by loss.weights["speaker/encoder"], default 1)
    n_mels: int = 64  # speaker encoder input
    # speaker-invariance pressure on the codes: a frame-wise speaker classifier on the quantized frames of the
    # finest speaker level behind a gradient reversal of this scale (0 = off); its loss is
    # loss.weights["speaker/adversary"] (default 1), its accuracy is logged as speaker/adversary_acc
    adversary: float = 0.0
    adversary_width: int = 128
    adversary_pool: bool = False  # one speaker prediction per crop (mean of the frames' logits), not per frame
    names: list[str] = field(default_factory=list)  # training speakers, filled from the corpus at train time


@dataclass
class PitchConfig:
    """The pitch path of a speech decoder (off by default): a neural source-filter excitation from frame-rate
    F0 and voicing, and a jointly trained F0 / voicing predictor from the codes and the speaker vector."""

    levels: list[int] = field(default_factory=list)  # decoder levels that take F0; [] = off (music)
    method: str = "dio"  # F0 extractor: dio (pyworld DIO + StoneMask) | harvest | pyin (librosa)
    hop: int = 64  # samples between F0 frames (must divide the hop of every pitch level)
    fmin: float = 50.0
    fmax: float = 600.0
    # nsf: the conv decoder filters an NSF excitation (sines at k * F0 + noise) added at every stage;
    # hpn: a harmonic-plus-noise synthesizer (DDSP) driven by a frame-rate network (nn/synth.py)
    synth: str = "nsf"
    harmonics: int = 8  # sines: NSF's excitation (e.g. 8) or the synthesizer's (e.g. 80); above Nyquist muted
    noise_bands: int = 65  # hpn: linear bands of the noise filter
    synth_width: int = 128  # hpn: channels of the frame-rate network (0: model.width)
    synth_depth: int = 0  # hpn: residual blocks per stage of the frame-rate network (0: model.depth)
    predictor_width: int = 64  # F0 / voicing predictor (codes + speaker -> F0), trained on detached codes
    # per-speaker [mean, std] of ln F0 over voiced frames, filled from the training corpus at train time
    stats: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class ModelConfig:
    kind: str = "audio_vqvae"
    mode: str = "independent"  # independent (Jukebox) | conditioned (VQ-VAE-2); matters with >1 level
    # one list per level: the strides level l adds on top of level l-1; level l's hop is the product of
    # all strides up to l. Jukebox's hops 8/32/128: [[2, 2, 2], [2, 2], [2, 2]].
    strides: list[list[int]] = field(default_factory=lambda: [[2, 2, 2, 2, 2, 2]])
    width: int = 64
    depth: int = 4  # residual blocks per stage
    dilation_growth: int = 3
    checkpoint_stages: int = 0  # highest-rate residual stacks recomputed in backward (saves memory)
    bottleneck: str = "vq"  # vq | identity
    level_weights: list[float] = field(default_factory=lambda: [1.0])  # loss multiplier, per level or one
    jitter: float = 0.0  # time jitter: in training a decoder's code frame is a neighbour's with this probability
    encoder_input: str = "wave"  # wave (strided convs on samples) | mel (log-mel frames every mel_hop samples)
    mel_bins: int = 80  # encoder_input: mel
    mel_hop: int = 64  # encoder_input: mel; must divide every level's hop
    content_norm: str = "none"  # none | instance: each item's encoder output normalised over time before the VQ
    vq: VQConfig = field(default_factory=VQConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    pitch: PitchConfig = field(default_factory=PitchConfig)

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def hops(self) -> list[int]:
        hops, hop = [], 1
        for level in self.strides:
            for s in level:
                hop *= s
            hops.append(hop)
        return hops

    @property
    def hop(self) -> int:
        """The finest level's hop."""
        return self.hops[0]

    def per_level(self, name: str) -> list:
        """A per-level list field (``vq.num_codes``, ``vq.beta``, ``level_weights``) expanded to L values."""
        values = list(getattr(self.vq, name.split(".", 1)[1]) if name.startswith("vq.") else getattr(self, name))
        if len(values) == 1:
            values = values * self.num_levels
        if len(values) != self.num_levels:
            raise ConfigError(
                f"model.{name} has {len(values)} values for {self.num_levels} levels (model.strides); "
                "give one value per level, or a single value for all"
            )
        return values


@dataclass
class STFTLossConfig:
    fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512])
    hop_sizes: list[int] = field(default_factory=lambda: [240, 120, 50])
    win_sizes: list[int] = field(default_factory=lambda: [1200, 600, 240])


@dataclass
class LossConfig:
    waveform: str = "l1"  # l1 | l2
    weights: dict[str, float] = field(
        default_factory=lambda: {"waveform": 1.0, "stft/sc": 1.0, "stft/logmag": 1.0, "vq/commitment": 1.0}
    )
    stft: STFTLossConfig = field(default_factory=STFTLossConfig)
    # scales (FFT sizes; hop n_fft / 4, n_fft / 8 mel bands) of the multi-scale log-mel L1 term "mel",
    # computed when loss.weights names it (DAC uses 7 windows, 32..2048 samples)
    mel_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64, 32])


@dataclass
class AdversarialConfig:
    """Adversarial training (HiFi-GAN / EnCodec / DAC): discriminators trained beside the model, their own optimizer
    in ``train.groups.disc``; the generator's terms are weighted in ``loss.weights`` as ``adv/gen`` (default 1) and
    ``adv/feat`` (feature matching, default 2)."""

    discriminators: list[str] = field(default_factory=list)  # mpd | msd | msstft | mbstft; [] = off
    loss: str = "hinge"  # hinge | ls
    start_step: int = 0  # discriminator steps before the generator's adversarial terms switch on
    levels: list[int] = field(default_factory=list)  # levels whose reconstructions are judged; [] = all
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])  # mpd
    scales: int = 3  # msd
    fft_sizes: list[int] = field(default_factory=lambda: [1024, 512, 256])  # msstft, mbstft (hop n_fft / 4)
    channels: int = 16  # width of every discriminator's conv stacks (HiFi-GAN's MPD: 32..1024; ours stay small)
    # EnCodec's gradient balancer: each term's weight sets its share of the gradient at the reconstruction
    balancer: bool = False
    balancer_total: float = 1.0
    balancer_decay: float = 0.999


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


@dataclass
class ExperimentConfig:
    name: str = "speech_vqvae"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adv: AdversarialConfig = field(default_factory=AdversarialConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ClassifierConfig:
    """The independent speaker classifier used to score voice conversion: log-mel + a small 2-D CNN."""

    n_mels: int = 64
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # one conv block (2x2 pooling) each
    embed_dim: int = 128
    dropout: float = 0.1
    speakers: list[str] = field(default_factory=list)  # filled from the corpus at train time


@dataclass
class ClassifierExperimentConfig:
    name: str = "speaker_classifier"
    data: DataConfig = field(default_factory=DataConfig)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/speaker_classifier", lr=1e-3))


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



# ------------------------------------------------------------------------------------------ image family
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
class ImageVQConfig:
    num_codes: int = 64
    dim: int = 16
    beta: float = 0.25
    decay: float = 0.99
    dead_threshold: float = 1.0
    init: str = "first_batch"  # first_batch | kmeans


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
    vq: ImageVQConfig = field(default_factory=ImageVQConfig)


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


def _check_keys(user: Any, schema: Any, source: str, prefix: str = "") -> None:
    """Raise ConfigError for the first key in ``user`` that the dataclass ``schema`` lacks."""
    if not isinstance(user, dict):
        return
    inst = schema() if isinstance(schema, type) else schema
    names = [f.name for f in dataclasses.fields(inst)]
    for key, value in user.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {sorted(names)}"
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}")
        child = getattr(inst, key)
        if dataclasses.is_dataclass(child):
            _check_keys(value, child, source, f"{prefix}{key}.")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, dict]]:
    """Return [(source, mapping), ...] with bases first."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'base:' include")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    bases = data.pop("base", [])
    layers: list[tuple[str, dict]] = []
    for base in [bases] if isinstance(bases, str) else bases:
        layers += _read_yaml(path.parent / base, seen + (path,))
    return layers + [(str(path), data)]


def _parse_overrides(overrides: list[str]) -> list[tuple[str, dict]]:
    layers = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value, e.g. train.max_steps=100")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:  # e.g. a !!python tag, which safe_load refuses to construct
            first = str(exc).splitlines()[0]
            raise ConfigError(f"override '{item}': the value is not plain YAML ({first}); give a number, string, "
                              "list or mapping") from exc
        nested: dict = {}
        cursor = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
        layers.append((f"override '{item}'", nested))
    return layers


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                schema: type = ExperimentConfig) -> Any:
    """Schema defaults <- YAML (with bases) <- ``key=value`` overrides, validated and typed."""
    layers = _read_yaml(Path(path)) if path is not None else []
    layers += _parse_overrides(overrides or [])
    merged = OmegaConf.structured(schema)
    for source, mapping in layers:
        _check_keys(mapping, schema, source)
        try:
            merged = OmegaConf.merge(merged, mapping)
        except OmegaConfBaseException as exc:
            msg = str(exc).splitlines()[0]
            raise ConfigError(f"{source}: {msg} (key '{getattr(exc, 'full_key', '?')}')") from exc
    return check_ranges(OmegaConf.to_object(merged), str(path) if path is not None else "overrides")


#: value ranges checked after every load: {schema class name: {field: (test, what it must be)}}
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_NOT_NEGATIVE = (lambda v: v >= 0, ">= 0")
_NOT_EMPTY = (lambda v: bool(str(v).strip()), "a non-empty path")
RANGES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "TrainConfig": {"max_steps": _AT_LEAST_1, "log_every": _AT_LEAST_1, "valid_every": _AT_LEAST_1,
                    "ckpt_every": _AT_LEAST_1, "grad_accum": _AT_LEAST_1, "max_nonfinite": _AT_LEAST_1,
                    "lr": _POSITIVE, "warmup_steps": _NOT_NEGATIVE, "keep_last": _NOT_NEGATIVE,
                    "grad_clip": _NOT_NEGATIVE, "divergence_ratio": (lambda v: v > 1, "> 1"),
                    "rollbacks": _NOT_NEGATIVE, "rollback_lr_scale": (lambda v: 0 < v < 1, "in (0, 1)"),
                    "out_dir": _NOT_EMPTY, "threads": (
                        lambda v: str(v).strip().lower() in ("auto", "follow") or (str(v).isdigit() and int(v) >= 1),
                        "'auto', 'follow' or a number of threads >= 1")},
    "DataConfig": {"root": _NOT_EMPTY, "crop_seconds": _POSITIVE, "batch_size": _AT_LEAST_1,
                   "sample_rate": _POSITIVE},
    "CodesDataConfig": {"root": _NOT_EMPTY, "window": (lambda v: v >= 2, ">= 2"), "batch_size": _AT_LEAST_1},
}


def check_ranges(cfg: Any, source: str = "config", prefix: str = "") -> Any:
    """Raise ConfigError naming the first field whose value is out of range (:data:`RANGES`); returns ``cfg``."""
    rules = RANGES.get(type(cfg).__name__, {})
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, source, f"{prefix}{f.name}.")
        elif f.name in rules and value is not None:
            test, what = rules[f.name]
            if not test(value):
                raise ConfigError(f"{source}: {prefix}{f.name}={value!r} is out of range: it must be {what}; "
                                  f"set it in the config or with {prefix}{f.name}=VALUE")
    return cfg


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict, source: str = "config", schema: type = ExperimentConfig) -> Any:
    _check_keys(data, schema, source)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {str(exc).splitlines()[0]}") from exc
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
