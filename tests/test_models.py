"""Audio autoencoders: the contract tests, hop arithmetic, and overfitting one batch."""

from __future__ import annotations

import pytest
import torch

from audiolvm.bottleneck import IdentityBottleneck, VectorQuantizerEMA
from audiolvm.models.audio_vqvae import audio_autoencoder
from audiolvm.nn import Downsample1d, Upsample1d
from tests.contracts import AutoencoderContract
from tests.helpers import SineDataset, tiny_objective


class TestAudioVQVAE(AutoencoderContract):
    def make_model(self):
        return audio_autoencoder(VectorQuantizerEMA(num_codes=32, dim=8), latent_dim=8, width=16,
                                 strides=[2, 3, 4], depth=2)


class TestAudioIdentityAutoencoder(AutoencoderContract):
    def make_model(self):
        return audio_autoencoder(IdentityBottleneck(), latent_dim=8, width=16, strides=[4, 2], depth=1)


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5, 8])
def test_resampling_convs_are_exact_factors(stride: int) -> None:
    x = torch.randn(2, 4, 12 * stride * 5)
    down = Downsample1d(4, 6, stride)(x)
    assert down.shape == (2, 6, x.shape[-1] // stride)
    assert Upsample1d(6, 4, stride)(down).shape == x.shape


def test_hop_is_product_of_strides() -> None:
    model = audio_autoencoder(IdentityBottleneck(), latent_dim=4, width=8, strides=[2, 3, 5], depth=1)
    assert model.hop == 30
    assert model.encoder(torch.randn(1, 1, 300)).shape == (1, 4, 10)


def test_overfitting_one_batch_reduces_loss_tenfold() -> None:
    torch.manual_seed(0)
    model = audio_autoencoder(VectorQuantizerEMA(num_codes=128, dim=16, beta=0.25), latent_dim=16,
                              width=32, strides=[2, 2], depth=2)
    objective = tiny_objective({"waveform": 1.0, "stft/sc": 0.0, "stft/logmag": 0.0, "vq/commitment": 1.0})
    ds = SineDataset(n=4, length=1024, seed=5)
    batch = {"audio": torch.stack([ds[i]["audio"] for i in range(4)])}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(400):
        loss = objective(model, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 10, f"loss went {first:.4f} -> {last:.4f}"
