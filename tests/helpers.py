"""Small shared builders for tests: synthetic audio datasets and tiny models."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolvm.bottleneck import VectorQuantizerEMA
from audiolvm.core.seed import derived_rng
from audiolvm.losses import MultiResolutionSTFTLoss
from audiolvm.models import AudioReconstructionObjective, Autoencoder
from audiolvm.models.audio_vqvae import audio_autoencoder


class SineDataset(Dataset):
    """Item i of epoch e: a random chirp-free sum of two sines, drawn from (seed, epoch, i) only."""

    def __init__(self, n: int = 16, length: int = 2048, rate: int = 8000, seed: int = 0, offset: int = 0):
        self.n, self.length, self.rate, self.seed, self.offset, self.epoch = n, length, rate, seed, offset, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = derived_rng(self.seed, self.epoch, i + self.offset)
        t = np.arange(self.length) / self.rate
        f = rng.uniform(100, 1500, size=2)
        a = rng.uniform(0.1, 0.4, size=2)
        x = (a[:, None] * np.sin(2 * np.pi * f[:, None] * t + rng.uniform(0, 6.28, size=(2, 1)))).sum(0)
        return {"audio": torch.from_numpy(x.astype(np.float32))[None]}  # (1, T)


def tiny_vqvae(num_codes: int = 32, dim: int = 8, width: int = 16, strides=(2, 2), **vq) -> Autoencoder:
    bottleneck = VectorQuantizerEMA(num_codes=num_codes, dim=dim, **vq)
    return audio_autoencoder(bottleneck, latent_dim=dim, width=width, strides=strides, depth=2)


def tiny_objective(weights: dict[str, float] | None = None, pitch: bool = False) -> AudioReconstructionObjective:
    weights = weights or {"waveform": 1.0, "stft/sc": 1.0, "stft/logmag": 1.0, "vq/commitment": 1.0}
    stft = MultiResolutionSTFTLoss([256, 128], [64, 32], [256, 128])
    return AudioReconstructionObjective(weights, stft, pitch=pitch)


class PitchSineDataset(SineDataset):
    """:class:`SineDataset` items with the F0 of their first sine as the batch's ``f0`` / ``voiced`` (every frame
    voiced), on the frame grid of ``hop`` samples: data for a pitch-aware model."""

    def __init__(self, hop: int = 64, **kw) -> None:
        super().__init__(**kw)
        self.hop = hop

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(i)
        f0 = float(derived_rng(self.seed, self.epoch, i + self.offset).uniform(100, 1500, size=2)[0])
        frames = self.length // self.hop + 1
        return item | {"f0": torch.full((frames,), f0), "voiced": torch.ones(frames)}


def tiny_pitch_model(rate: int = 8000, hop: int = 64, synth: str = "nsf"):  # noqa: ANN201 - MultiLevelAutoencoder
    """A one-level VQ-VAE (hop 64) whose decoder takes F0, without speakers: a conv decoder fed the NSF source
    (``synth="nsf"``) or the harmonic-plus-noise synthesizer's frame network (``"hpn"``)."""
    from audiolvm.builders import build_model
    from audiolvm.config import ModelConfig, PitchConfig, VQConfig

    cfg = ModelConfig(strides=[[4, 16]], width=16, depth=1, vq=VQConfig(num_codes=[32], dim=8),
                      pitch=PitchConfig(levels=[0], hop=hop, synth=synth, harmonics=8 if synth == "nsf" else 24,
                                        noise_bands=17, synth_width=16, stats={"*": [6.0, 0.5]}))
    return build_model(cfg, rate)


def tiny_adversarial(start_step: int = 0, balancer: bool = False, loss: str = "hinge"):  # noqa: ANN201
    """:func:`tiny_objective` with two small discriminators (multi-period, multi-scale STFT): a step in phases."""
    from audiolvm.losses.balancer import Balancer
    from audiolvm.models.adversarial import AdversarialObjective, Discriminators, balancer_keys
    from audiolvm.nn.discriminators import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator

    base = tiny_objective()
    keys = balancer_keys(1, base.weights)
    disc = Discriminators({"mpd": MultiPeriodDiscriminator((2, 3), channels=(4, 8)),
                           "msstft": MultiScaleSTFTDiscriminator((256, 128), 4)},
                          Balancer(keys, decay=0.9) if balancer else None)
    return AdversarialObjective(base, disc, loss, {"adv/gen": 1.0, "adv/feat": 2.0}, start_step)
