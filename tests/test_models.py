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


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 8])
def test_space_to_depth_resampling_is_the_strided_and_transposed_conv(stride: int) -> None:
    """Downsample1d / Upsample1d compute a strided conv and a transposed conv with rearranged weights: outputs and
    gradients (input and weights) must equal the plain torch modules' on the same parameters."""
    torch.manual_seed(stride)
    s = stride
    for module, length in ((Downsample1d(5, 6, s), 7 * s), (Upsample1d(5, 6, s), 7)):
        x = torch.randn(3, 5, length, requires_grad=True)
        out = module(x)
        if isinstance(module, Downsample1d):
            ref = module.conv(torch.nn.functional.pad(x, (s // 2, s - s // 2)))
        else:
            full = module.conv(x)
            ref = full[..., s // 2 : full.shape[-1] - (s - s // 2)]
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        g = torch.randn_like(out)
        grads = torch.autograd.grad(out, (x, module.conv.weight, module.conv.bias), g)
        ref_grads = torch.autograd.grad(ref, (x, module.conv.weight, module.conv.bias), g)
        for a, b in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


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
    # 600 steps: at 400 the VQ's discrete assignments make the ratio a matter of float rounding (8.6x to 13.3x over
    # four seeds after a change of conv kernels with the same maths); at 600 every seed tried reached 12.8x or more
    for _ in range(600):
        loss = objective(model, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 10, f"loss went {first:.4f} -> {last:.4f}"
