"""Likelihood evaluation on a linear-Gaussian model with a known marginal: z ~ N(0, I), x = Wz + b + sigma*eps,
so p(x) = N(b, W W^T + sigma^2 I). With W's columns orthogonal the exact posterior is diagonal, so it can be
the VAE's own encoder. Also: bits per dim, active units and the mutual-information estimate."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiolvm.bottleneck import GaussianBottleneck
from audiolvm.eval.likelihood import (
    active_units,
    bits_per_dim,
    estimate_nll,
    log_marginal,
    log_marginal_over_labels,
    mutual_information,
)
from audiolvm.losses.likelihoods import GaussianLikelihood
from audiolvm.models.vae import VAE, ConditionalVAE

X_DIM, Z_DIM, SIGMA = 6, 2, 0.4


pytestmark = pytest.mark.usefixtures("one_thread")


def linear_gaussian(mean_shift: float = 0.0, logvar_shift: float = 0.0) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """The model as a VAE whose encoder is the exact posterior (shifted to make a worse proposal),
    plus the true W and b."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(X_DIM, Z_DIM, generator=g, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)  # orthogonal columns: W^T W diagonal
    b = torch.randn(X_DIM, generator=g, dtype=torch.float64)
    post_var = 1.0 / (1.0 + (w * w).sum(0) / SIGMA**2)  # (D,): exact posterior variances
    gain = post_var[:, None] * w.t() / SIGMA**2  # (D, X): posterior mean = gain (x - b)
    encoder, decoder = nn.Linear(X_DIM, 2 * Z_DIM), nn.Linear(Z_DIM, X_DIM)
    with torch.no_grad():
        encoder.weight.zero_()
        encoder.weight[:Z_DIM] = gain.float()
        encoder.bias[:Z_DIM] = (-gain @ b + mean_shift).float()
        encoder.bias[Z_DIM:] = (post_var.log() + logvar_shift).float()
        decoder.weight.copy_(w.float())
        decoder.bias.copy_(b.float())
    lik = GaussianLikelihood(X_DIM, scale="fixed", std=SIGMA)
    return VAE(encoder, GaussianBottleneck(), decoder, lik, latent_shape=(Z_DIM,)).eval(), w, b


def exact_log_px(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cov = w @ w.t() + SIGMA**2 * torch.eye(X_DIM, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x.double())


def sample_data(n: int, w: torch.Tensor, b: torch.Tensor, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, Z_DIM, generator=g, dtype=torch.float64)
    return (z @ w.t() + b + SIGMA * torch.randn(n, X_DIM, generator=g, dtype=torch.float64)).float()


def test_exact_posterior_gives_the_exact_log_marginal_for_every_k_and_chunking() -> None:
    model, w, b = linear_gaussian()
    x = sample_data(16, w, b)
    exact = exact_log_px(x, w, b)
    for samples, chunk in [(1, 1), (10, 3), (100, 100), (5000, 512)]:
        log_px, elbo = log_marginal(model, x, samples=samples, chunk_size=chunk,
                                    generator=torch.Generator().manual_seed(samples))
        assert log_px.dtype == torch.float64
        assert torch.allclose(log_px, exact, atol=2e-3), (samples, (log_px - exact).abs().max())
    assert torch.allclose(elbo, exact, atol=0.05)  # KL(q || posterior) = 0: the ELBO is tight (MC error only)


def test_importance_sampled_nll_upper_bounds_the_exact_nll_and_converges_with_k() -> None:
    model, w, b = linear_gaussian(mean_shift=0.6, logvar_shift=0.8)  # a wrong, over-wide proposal
    x = sample_data(64, w, b)
    exact_nll = -exact_log_px(x, w, b).mean().item()
    gaps = {}
    for samples in (1, 10, 100, 5000):
        report = estimate_nll(model, x, samples=samples, chunk_size=256, batch_size=32, seed=samples)
        gaps[samples] = report.nll - exact_nll
        assert report.items == 64 and report.per_item_nll.dtype == torch.float64
    assert all(gap > -0.01 for gap in gaps.values()), gaps  # an upper bound on average
    assert gaps[1] > gaps[10] > gaps[100] > gaps[5000] - 0.005, gaps
    assert gaps[1] > 0.2 and abs(gaps[5000]) < 0.02, gaps
    report = estimate_nll(model, x, samples=50, seed=0)
    assert -report.elbo > report.nll  # the beta = 1 ELBO is looser than the IS estimate


def test_estimates_are_reproducible_and_accept_loaders_of_dict_batches() -> None:
    model, w, b = linear_gaussian(mean_shift=0.3)
    x = sample_data(12, w, b)
    a = estimate_nll(model, x, samples=30, batch_size=4, seed=7)
    loader = [{"image": x[i : i + 4]} for i in range(0, 12, 4)]
    c = estimate_nll(model, loader, samples=30, seed=7)
    assert torch.equal(a.per_item_nll, c.per_item_nll)
    assert estimate_nll(model, x, samples=30, batch_size=4, seed=8).nll != a.nll
    assert estimate_nll(model, x, samples=30, batch_size=4, seed=7, max_items=5).items == 5


class CatLinear(nn.Linear):
    """``Linear([input | one-hot class])``: the conditional encoder / decoder of a ConditionalVAE."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([x, cond], dim=1))


def class_conditional_linear_gaussian(classes: int = 3) -> tuple[ConditionalVAE, torch.Tensor, torch.Tensor,
                                                                   torch.Tensor]:
    """x = W z + b_y + sigma eps with y uniform over ``classes``: p(x) is a mixture of K Gaussians. The
    encoder is the exact posterior of every class, so each log p(x|y) estimate is exact."""
    base, w, _ = linear_gaussian()
    offsets = 3.0 * torch.randn(classes, X_DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gain = base.encoder.weight[:Z_DIM].double()  # (D, X)
    encoder, decoder = CatLinear(X_DIM + classes, 2 * Z_DIM), CatLinear(Z_DIM + classes, X_DIM)
    with torch.no_grad():
        encoder.weight.zero_()
        encoder.weight[:Z_DIM, :X_DIM] = gain.float()
        encoder.weight[:Z_DIM, X_DIM:] = (-offsets @ gain.t()).t().float()  # mean = gain (x - b_y)
        encoder.bias.copy_(base.encoder.bias)
        encoder.bias[:Z_DIM] = 0.0
        decoder.weight[:, :Z_DIM] = w.float()
        decoder.weight[:, Z_DIM:] = offsets.t().float()
        decoder.bias.zero_()
    model = ConditionalVAE(encoder, GaussianBottleneck(), decoder, base.likelihood, (Z_DIM,), classes).eval()
    return model, w, offsets, torch.arange(classes)


def test_enumerating_classes_gives_the_exact_mixture_marginal_and_class_posterior() -> None:
    model, w, offsets, classes = class_conditional_linear_gaussian()
    g = torch.Generator().manual_seed(4)
    y = torch.randint(0, len(classes), (24,), generator=g)
    x = (sample_data(24, w, torch.zeros(X_DIM, dtype=torch.float64), seed=5).double() + offsets[y]).float()
    per_class = torch.stack([exact_log_px(x, w, offsets[c]) for c in classes], dim=1)  # (N, K): log p(x|y)
    exact = torch.logsumexp(per_class, dim=1) - math.log(len(classes))
    log_px, elbo, log_post = log_marginal_over_labels(model, x, len(classes), samples=50, chunk_size=20,
                                                      generator=torch.Generator().manual_seed(0))
    assert torch.allclose(log_px, exact, atol=2e-3), (log_px - exact).abs().max()
    assert torch.allclose(log_post.exp(), torch.softmax(per_class, dim=1), atol=2e-3)
    assert elbo.mean().item() == pytest.approx(exact.mean().item(), abs=0.1)  # exact posteriors: tight (MC noise)
    report = estimate_nll(model, [{"image": x, "label": y}], samples=50, enumerate_classes=len(classes))
    assert report.nll == pytest.approx(-exact.mean().item(), abs=2e-3)
    assert torch.equal(report.predicted, per_class.argmax(dim=1))
    given = estimate_nll(model, [{"image": x, "label": y}], samples=50, label_key="label")
    exact_given = -per_class.gather(1, y[:, None]).squeeze(1)
    assert given.nll == pytest.approx(exact_given.mean().item(), abs=2e-3)  # the labels were read
    assert report.nll > given.nll  # log p(x) < log p(x|y) here: the true class explains x best


def test_bits_per_dim_conversion() -> None:
    assert bits_per_dim(10 * math.log(2.0), 10) == pytest.approx(1.0)
    assert bits_per_dim(0.0, 784, bin_width=1 / 256) == pytest.approx(8.0)
    model, w, b = linear_gaussian()
    report = estimate_nll(model, sample_data(8, w, b), samples=5)
    assert report.bpd == pytest.approx(report.nll / (X_DIM * math.log(2.0)))


class FixedPosterior(nn.Module):
    """Encoder with mean = x[:, :active] padded with zeros to ``dims``, and a fixed log-variance."""

    def __init__(self, dims: int, active: int, logvar: float) -> None:
        super().__init__()
        self.dims, self.active, self.logvar = dims, active, logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.zeros(x.shape[0], self.dims)
        mean[:, : self.active] = x[:, : self.active]
        return torch.cat([mean, torch.full_like(mean, self.logvar)], dim=1)  # (B, 2D)


def encoder_only_vae(active: int, logvar: float, dims: int = 4) -> VAE:
    decoder = nn.Linear(dims, X_DIM)
    return VAE(FixedPosterior(dims, active, logvar), GaussianBottleneck(), decoder,
               GaussianLikelihood(X_DIM), latent_shape=(dims,))


def test_active_units_count_dimensions_whose_posterior_mean_varies() -> None:
    x = torch.randn(200, X_DIM, generator=torch.Generator().manual_seed(0))
    count, variances = active_units(encoder_only_vae(active=2, logvar=0.0), x, batch_size=64)
    assert count == 2 and variances.shape == (4,)
    assert (variances[2:] == 0).all() and (variances[:2] > 0.5).all()


def test_mutual_information_is_zero_for_an_uninformative_encoder_and_near_log_b_for_a_sharp_one() -> None:
    x = 5 * torch.randn(64, X_DIM, generator=torch.Generator().manual_seed(0))
    assert mutual_information(encoder_only_vae(active=0, logvar=0.0), x, batch_size=64) == pytest.approx(0.0, abs=1e-9)
    sharp = mutual_information(encoder_only_vae(active=3, logvar=-10.0), x, batch_size=64)
    assert math.log(64) - 0.05 < sharp <= math.log(64) + 1e-9
    middling = mutual_information(encoder_only_vae(active=1, logvar=0.0), x, batch_size=64)
    assert 0.1 < middling < sharp
