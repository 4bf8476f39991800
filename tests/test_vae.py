"""The image VAE family and image VQ-VAE: the shared autoencoder contract, objectives (beta, capacity,
warm-up from the model's step count, free bits, IWAE), conditional VAEs, M2, the PixelCNN decoder,
2-D conv stacks, and VQ-VAE codes modelled by the 2-D PixelCNN prior."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiolvm.bottleneck import GaussianBottleneck, VectorQuantizerEMA
from audiolvm.eval.likelihood import log_marginal_over_labels
from audiolvm.losses.bounds import LinearSchedule
from audiolvm.losses.likelihoods import BernoulliLikelihood, CategoricalLikelihood, GaussianLikelihood
from audiolvm.models.autoencoder import Autoencoder
from audiolvm.models.image_vqvae import ImageReconstructionObjective, image_vqvae
from audiolvm.models.m2 import M2, M2Objective, m2_bounds
from audiolvm.models.pixelcnn_decoder import PixelCNNDecoder
from audiolvm.models.priors.pixelcnn import GatedPixelCNN2d
from audiolvm.models.vae import VAE, ConditionalVAE
from audiolvm.models.vae_objective import VAEObjective
from audiolvm.nn import ConvDecoder2d, ConvEncoder2d, MLPDecoder, MLPEncoder
from tests.contracts import AutoencoderContract, ConditionalContract

pytestmark = pytest.mark.usefixtures("one_thread")


def images(batch: int, size: int = 8, channels: int = 1, seed: int = 0, binary: bool = True) -> torch.Tensor:
    x = torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))
    return (x > 0.5).float() if binary else x


def mlp_vae(samples: int = 1, size: int = 8, latent: int = 4, cond: int = 0) -> VAE:
    shape = (1, size, size)
    encoder = MLPEncoder(shape, 2 * latent, hidden=(32,), cond_dim=cond)
    decoder = MLPDecoder(latent, shape, hidden=(32,), cond_dim=cond)
    parts = (encoder, GaussianBottleneck(samples=samples), decoder, BernoulliLikelihood(1), (latent,))
    return ConditionalVAE(*parts, num_classes=cond) if cond else VAE(*parts)


class ImageContract(AutoencoderContract):
    size = 8

    def make_input(self, length: int, batch: int = 2) -> torch.Tensor:
        return images(batch, self.size, seed=length)  # length only seeds the fixed-size images

    def input_lengths(self) -> list[int]:
        return [0, 1, 2]


class TestMLPVAE(ImageContract):
    def make_model(self) -> Autoencoder:
        return mlp_vae(samples=3)

    def latent_shape(self, model, x):
        return ()  # z: (k*B, D)

    def training_loss(self, model, x):
        return VAEObjective()(model, {"image": x})["loss"]


class TestConvVAEWithLearnedPixelScale(ImageContract):
    """28x28 images, a 7x7 latent map, a Gaussian likelihood with a learned per-pixel scale."""

    size = 28

    def make_model(self) -> Autoencoder:
        encoder = ConvEncoder2d(1, 2 * 3, width=8, factors=(2, 2), depth=1)
        decoder = ConvDecoder2d(3, 1, width=8, factors=(2, 2), depth=1)
        likelihood = GaussianLikelihood(1, scale="pixel", std=0.5, shape=(1, 28, 28))
        return VAE(encoder, GaussianBottleneck(), decoder, likelihood, latent_shape=(3, 7, 7))

    def latent_shape(self, model, x):
        return (7, 7)

    def training_loss(self, model, x):  # the reconstruction alone never reaches the likelihood's scale
        return VAEObjective()(model, {"image": x})["loss"]


class TestConvVAEWithFlatLatent(TestMLPVAE):
    size = 32

    def make_model(self) -> Autoencoder:
        encoder = ConvEncoder2d(1, 2 * 5, width=8, factors=(2, 2), depth=1, input_size=(32, 32))
        decoder = ConvDecoder2d(5, 1, width=8, factors=(2, 2), depth=1, output_size=(32, 32))
        return VAE(encoder, GaussianBottleneck(samples=2), decoder, BernoulliLikelihood(1), latent_shape=(5,))


class TestConditionalVAE(ConditionalContract, ImageContract):
    def make_model(self) -> Autoencoder:
        return mlp_vae(samples=2, cond=self.num_classes)

    def latent_shape(self, model, x):
        return ()

    def training_loss(self, model, x):
        return VAEObjective(conditional=True)(model, {"image": x, "label": self.labels(x)})["loss"]


class TestM2(ConditionalContract, ImageContract):
    """Half the items unlabelled: the objective enumerates their classes and trains the classifier ``q(y|x)``."""

    size = 4

    def make_model(self) -> Autoencoder:
        return tiny_m2(self.num_classes, self.size)

    def latent_shape(self, model, x):
        return ()

    def training_loss(self, model, x):
        label = torch.where(torch.arange(x.shape[0]) % 2 == 0, self.labels(x), -1)
        return M2Objective(alpha=0.5)(model, {"image": x, "label": label})["loss"]


class TestImageVQVAE(ImageContract):
    def make_model(self) -> Autoencoder:
        return image_vqvae(VectorQuantizerEMA(num_codes=16, dim=4), in_channels=1, width=8, factors=(2,), depth=1)

    def latent_shape(self, model, x):
        return (4, 4)


# ------------------------------------------------------------------------------------------ 2-D stacks


@pytest.mark.parametrize("size,factors", [(8, (2,)), (8, (2, 2)), (28, (2, 2)), (32, (2, 2, 2)), (64, (2, 4)),
                                          (64, (2, 2, 2))])
def test_conv_stacks_resample_by_exact_factors(size: int, factors: tuple[int, ...]) -> None:
    x = torch.randn(2, 3, size, size)
    f = math.prod(factors)
    enc = ConvEncoder2d(3, 6, width=8, factors=factors, depth=1)
    assert enc(x).shape == (2, 6, size // f, size // f)
    dec = ConvDecoder2d(6, 3, width=8, factors=factors, depth=1)
    assert dec(enc(x)).shape == x.shape
    flat = ConvEncoder2d(3, 6, width=8, factors=factors, depth=1, input_size=(size, size))
    assert ConvDecoder2d(6, 3, width=8, factors=factors, depth=1, output_size=(size, size))(flat(x)).shape == x.shape


def test_conv_stacks_refuse_sizes_that_do_not_divide() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        ConvEncoder2d(1, 2, factors=(2, 2, 2), input_size=(28, 28))
    with pytest.raises(ValueError, match="not divisible"):
        ConvEncoder2d(1, 2, factors=(4,))(torch.zeros(1, 1, 10, 10))


# ------------------------------------------------------------------------------------------ objectives


def test_beta_vae_loss_is_reconstruction_plus_beta_times_analytic_kl() -> None:
    torch.manual_seed(0)
    model, x = mlp_vae(), images(4)
    out = VAEObjective(beta=4.0)(model, {"image": x})
    assert out["loss"].item() == pytest.approx(out["recon"].item() + 4.0 * out["kl"].item(), rel=1e-5)
    assert out["elbo"].item() == pytest.approx(-(out["recon"].item() + out["kl"].item()), rel=1e-5)  # beta = 1
    assert 0 <= out["kl/active"].item() <= 4


def test_warmup_and_capacity_follow_the_models_step_count() -> None:
    torch.manual_seed(0)
    model, x = mlp_vae(), images(4)
    objective = VAEObjective(beta=2.0, warmup=LinearSchedule(0.0, 1.0, steps=4),
                             capacity=LinearSchedule(0.0, 8.0, steps=4))
    weights, capacities = [], []
    for _ in range(6):
        out = objective(model, {"image": x})
        weights.append(out["kl/weight"].item())
        capacities.append(out["kl/capacity"].item())
        assert out["loss"].item() == pytest.approx(
            out["recon"].item() + weights[-1] * abs(out["kl"].item() - capacities[-1]), rel=1e-5)
    assert weights == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert capacities == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]
    model.eval()
    with torch.no_grad():  # validation does not advance the schedule
        objective(model, {"image": x})
    assert int(model.train_steps) == 6


def test_free_bits_objective_floors_each_latent_dims_kl() -> None:
    torch.manual_seed(0)
    model, x = mlp_vae(), images(4)
    out = VAEObjective(free_bits=0.5)(model, {"image": x})
    # a fresh encoder has KL far below 0.5 nats in each of its 4 dims
    assert out["kl"].item() < 4 * 0.5
    assert out["loss"].item() == pytest.approx(out["recon"].item() + 4 * 0.5, rel=1e-5)
    with pytest.raises(ValueError, match="free_bits"):
        VAEObjective(free_bits=0.5, estimator="stl")


def test_iwae_objective_reports_a_bound_above_the_elbo_and_refuses_kl_shaping() -> None:
    torch.manual_seed(0)
    model, x = mlp_vae(samples=20), images(8)
    out = VAEObjective()(model, {"image": x})
    assert out["loss"].item() == pytest.approx(-out["iwae"].item())
    assert out["iwae"].item() >= out["elbo"].item()
    with pytest.raises(ValueError, match="k = 1 ELBO"):
        VAEObjective(beta=2.0)(model, {"image": x})


def test_validation_samples_from_the_posterior_but_reconstruction_uses_its_mean() -> None:
    torch.manual_seed(0)
    model, x = mlp_vae(), images(4)
    model.eval()
    with torch.no_grad():
        mean_out, sampled = model(x), model(x, sample=True)
    assert torch.equal(mean_out.z, mean_out.mean)
    assert not torch.equal(sampled.z, sampled.mean)


@pytest.mark.parametrize("samples", [1, 5])
def test_bf16_autocast_keeps_the_bound_in_float32_and_close_to_the_float32_bound(samples: int) -> None:
    """Under ``train.mixed_precision=bf16`` the model's forward runs in bf16 autocast; the bound's terms
    (log p(x|z), the KL, the IWAE weights) must stay float32, so the loss matches float32 to bf16 accuracy."""
    torch.manual_seed(0)
    model, x = mlp_vae(samples=samples), images(16)
    torch.manual_seed(1)
    exact = VAEObjective()(model, {"image": x})["loss"]
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, sample=True)
        assert out.params.dtype == torch.bfloat16  # the decoder did run in bf16
        torch.manual_seed(1)
        mixed = VAEObjective()(model, {"image": x})["loss"]
    assert out.log_px_z.dtype == out.kl_elements.dtype == mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(exact.item(), rel=0.02) and mixed.item() != exact.item()


def test_training_improves_the_elbo_of_a_small_data_set() -> None:
    torch.manual_seed(0)
    model, x = mlp_vae(latent=4), images(16, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    objective = VAEObjective()
    first = objective(model, {"image": x})["elbo"].item()
    for _ in range(150):
        opt.zero_grad()
        objective(model, {"image": x})["loss"].backward()
        opt.step()
    assert objective(model, {"image": x})["elbo"].item() > first + 5.0


# ------------------------------------------------------------------------------------------ conditional


def test_conditional_vae_conditions_its_encoder_and_needs_its_label() -> None:
    """(The decoder's use of the label: ``ConditionalContract``.)"""
    torch.manual_seed(0)
    model, x = mlp_vae(cond=3).eval(), images(2)
    mean_a, _ = model.posterior(x, torch.tensor([0, 0]))
    assert not torch.allclose(mean_a, model.posterior(x, torch.tensor([1, 1]))[0])
    out = VAEObjective(conditional=True)(model.train(), {"image": x, "label": torch.tensor([0, 2])})
    assert torch.isfinite(out["loss"])
    g = torch.Generator().manual_seed(0)
    assert model.sample(3, torch.tensor([0, 1, 2]), generator=g).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="needs label"):
        model(x)
    with pytest.raises(ValueError, match="unconditional"):
        mlp_vae()(x, torch.tensor([0, 1]))


def test_prior_samples_are_reproducible_with_a_generator() -> None:
    model = mlp_vae()
    a = model.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, model.sample(5, generator=torch.Generator().manual_seed(4)))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert model.sample(2, mean=True).shape == (2, 1, 8, 8)


# ------------------------------------------------------------------------------------------ M2


def tiny_m2(num_classes: int = 3, size: int = 4, latent: int = 2) -> M2:
    shape = (1, size, size)
    return M2(MLPEncoder(shape, 2 * latent, (16,), cond_dim=num_classes), GaussianBottleneck(),
              MLPDecoder(latent, shape, (16,), cond_dim=num_classes), BernoulliLikelihood(1), (latent,),
              num_classes, classifier=MLPEncoder(shape, num_classes, (16,)))


def test_m2_with_all_labelled_data_does_not_use_the_unlabelled_term() -> None:
    torch.manual_seed(0)
    model, x = tiny_m2(), images(5, size=4)
    label = torch.tensor([0, 1, 2, 0, 1])
    out = model(x, label, sample=True, semi=True)
    assert out.vae.log_px_z.shape == (5,)  # no enumerated copies
    labelled, unlabelled = m2_bounds(out, 3)
    assert labelled.shape == (5,) and unlabelled.shape == (0,)
    torch.manual_seed(1)
    result = M2Objective(alpha=0.0)(model, {"image": x, "label": label})
    result["loss"].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.classifier.parameters())
    assert result["loss"].item() == pytest.approx(-result["labelled/elbo"].item(), rel=1e-5)
    assert result["unlabelled/bound"].item() == 0.0


def test_m2_unlabelled_items_enumerate_every_class_and_train_the_classifier() -> None:
    torch.manual_seed(0)
    model, x = tiny_m2(), images(4, size=4)
    label = torch.tensor([1, -1, -1, 2])
    out = model(x, label, sample=True, semi=True)
    assert out.vae.log_px_z.shape == (2 + 3 * 2,)  # 2 labelled + 3 classes x 2 unlabelled
    result = M2Objective(alpha=0.5)(model, {"image": x, "label": label})
    result["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.classifier.parameters())
    assert result["labelled"].item() == 0.5


def test_m2_unlabelled_bound_is_below_the_importance_sampled_log_marginal() -> None:
    """U(x) <= log p(x) = logsumexp_y [log p(y) + log p(x|y)], with log p(x|y) estimated by IS (K=3000)."""
    torch.manual_seed(0)
    model, x, k = tiny_m2(), images(3, size=4, seed=5), 3
    with torch.no_grad():
        bounds = torch.stack([m2_bounds(model(x, None, sample=True, semi=True), k)[1] for _ in range(200)]).mean(0)
        log_px = log_marginal_over_labels(model, x, k, samples=3000, generator=torch.Generator().manual_seed(1))[0]
    assert (bounds <= log_px + 0.05).all(), (bounds, log_px)
    assert (log_px - bounds).mean() > 0.1  # a real gap: the check is not vacuous


# ------------------------------------------------------------------------------------------ PixelCNN decoder


def pixelcnn_vae(levels: int = 4) -> VAE:
    lik = CategoricalLikelihood(1, levels=levels)
    conditioner = MLPDecoder(3, (6, 6, 6), hidden=(16,))  # z -> (6, H, W) spatial condition
    decoder = PixelCNNDecoder(conditioner, 6, 1, lik.param_channels, channels=8, layers=3)
    return VAE(MLPEncoder((1, 6, 6), 6, (16,)), GaussianBottleneck(), decoder, lik, latent_shape=(3,))


def test_pixelcnn_decoder_is_causal_in_raster_order() -> None:
    torch.manual_seed(0)
    model = pixelcnn_vae()
    x = (torch.randint(0, 4, (1, 1, 6, 6)).float() / 3).requires_grad_(True)
    z = torch.randn(1, 3)
    i, j = 3, 2
    model.decoder(z, x)[0, :, i, j].sum().backward()
    support = x.grad[0, 0] != 0  # (H, W)
    order = torch.arange(36).view(6, 6)
    assert not support[order >= i * 6 + j].any()  # nothing at or after (i, j)
    assert support[order < i * 6 + j].any()


def test_vae_with_pixelcnn_decoder_trains_and_samples_on_the_level_grid() -> None:
    torch.manual_seed(0)
    model, x = pixelcnn_vae(), (torch.randint(0, 4, (4, 1, 6, 6)).float() / 3)
    out = VAEObjective()(model, {"image": x})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.decoder.conditioner.net[0].weight.grad.abs().sum() > 0
    samples = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 1, 6, 6)
    assert torch.allclose(samples * 3, (samples * 3).round())


# ------------------------------------------------------------------------------------------ VQ-VAE + prior


def test_image_vqvae_codes_are_modelled_sampled_and_decoded_by_the_2d_pixelcnn() -> None:
    torch.manual_seed(0)
    model = image_vqvae(VectorQuantizerEMA(num_codes=8, dim=4), in_channels=1, width=8, factors=(2,), depth=1)
    x = images(16, size=8, binary=False)
    objective = ImageReconstructionObjective(weights={"recon": 1.0, "vq/commitment": 1.0})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        opt.zero_grad()
        out = objective(model, {"image": x})
        out["loss"].backward()
        opt.step()
    assert {"recon", "vq/commitment", "vq/perplexity"} <= set(out)
    codes = model.encode(x)  # (16, 4, 4)
    assert codes.shape == (16, 4, 4) and codes.max() < 8
    prior = GatedPixelCNN2d(num_codes=8, channels=8, layers=2)
    loss = prior(codes)["loss"]
    assert torch.isfinite(loss) and 0 < loss.item() < 3 * math.log(8)
    sampled = prior.sample(2, (4, 4), generator=torch.Generator().manual_seed(0), progress=False)
    assert sampled.shape == (2, 4, 4)
    assert model.decode_codes(sampled).shape == (2, 1, 8, 8)
    with pytest.raises(KeyError, match="valid"):
        ImageReconstructionObjective(weights={"stft/sc": 1.0})(model, {"image": x})


def test_vae_refuses_a_non_gaussian_bottleneck() -> None:
    with pytest.raises(TypeError, match="GaussianBottleneck"):
        VAE(nn.Identity(), VectorQuantizerEMA(4, 2), nn.Identity(), BernoulliLikelihood(1), (2,))
