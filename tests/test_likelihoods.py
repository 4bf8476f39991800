"""Image likelihoods p(x|z): agreement with torch.distributions, normalisation of the discretized
logistic over every level, numerical stability at the edges, sampling and means, the registry."""

from __future__ import annotations

import math

import pytest
import torch

from audiolvm.losses.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    make_likelihood,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_bernoulli_matches_torch_distributions() -> None:
    logits = 3 * torch.randn(4, 2, 5, 5, generator=gen())
    x = (torch.rand(4, 2, 5, 5, generator=gen(1)) > 0.5).float()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(BernoulliLikelihood(2).log_prob(x, logits), expected, atol=1e-4)


def test_categorical_matches_torch_distributions_in_both_layouts() -> None:
    lik = CategoricalLikelihood(channels=3, levels=7, low=0.0, high=1.0)
    logits = torch.randn(2, 7, 3, 4, 4, generator=gen())  # (N, L, C, H, W)
    levels = torch.randint(0, 7, (2, 3, 4, 4), generator=gen(1))
    x = levels.float() / 6  # values on the grid of [0, 1]
    expected = torch.distributions.Categorical(logits=logits.movedim(1, -1)).log_prob(levels).flatten(1).sum(1)
    assert torch.allclose(lik.log_prob(x, logits), expected, atol=1e-4)
    assert torch.allclose(lik.log_prob(x, logits.reshape(2, 21, 4, 4)), expected, atol=1e-4)


def test_gaussian_fixed_and_decoder_scales_match_torch_normal() -> None:
    x, mean = torch.randn(3, 2, 4, 4, generator=gen()), torch.randn(3, 2, 4, 4, generator=gen(1))
    log_std = 0.5 * torch.randn(3, 2, 4, 4, generator=gen(2))
    fixed = GaussianLikelihood(2, scale="fixed", std=0.3).log_prob(x, mean)
    assert torch.allclose(fixed, torch.distributions.Normal(mean, 0.3).log_prob(x).flatten(1).sum(1), atol=1e-3)
    learned = GaussianLikelihood(2, scale="decoder").log_prob(x, torch.cat([mean, log_std], dim=1))
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(learned, expected, atol=1e-3)


def test_gaussian_per_pixel_scale_is_a_learned_parameter() -> None:
    lik = GaussianLikelihood(1, scale="pixel", std=0.5, shape=(1, 3, 3))
    x, mean = torch.randn(4, 1, 3, 3, generator=gen()), torch.zeros(4, 1, 3, 3)
    assert torch.allclose(lik.log_prob(x, mean), torch.distributions.Normal(0.0, 0.5).log_prob(x).flatten(1).sum(1),
                          atol=1e-4)
    lik.log_prob(x, mean).sum().backward()
    assert lik.log_std.grad is not None and lik.log_std.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        GaussianLikelihood(1, scale="pixel")


def all_level_log_probs(lik: DiscretizedLogisticLikelihood | CategoricalLikelihood, params: torch.Tensor,
                        levels: int) -> torch.Tensor:
    """``log P(x = level l)`` for every level and item of a one-pixel, one-channel model: ``[L x N]``."""
    n = params.shape[0]
    values = lik.from_level(torch.arange(levels))  # (L,)
    x = values.view(levels, 1, 1, 1, 1).expand(levels, n, 1, 1, 1).reshape(levels * n, 1, 1, 1)
    rep = params.repeat(levels, 1, 1, 1)  # (L*N, P, 1, 1)
    return lik.log_prob(x, rep).view(levels, n)


@pytest.mark.parametrize("mixtures", [1, 3])
@pytest.mark.parametrize("low,high", [(-1.0, 1.0), (0.0, 1.0)])
def test_discretized_logistic_sums_to_one_over_all_levels(mixtures: int, low: float, high: float) -> None:
    levels = 256
    lik = DiscretizedLogisticLikelihood(channels=1, levels=levels, low=low, high=high, mixtures=mixtures)
    n = 12
    params = torch.randn(n, lik.param_channels, 1, 1, generator=gen()).double()
    # means at and far beyond the edges; scales from a fraction of a bin to much wider than the range
    means = torch.tensor([-5.0, -1.0, -0.999, -0.3, 0.0, 0.5, 0.999, 1.0, 5.0, 0.2, -0.7, 0.9], dtype=torch.float64)
    log_scales = torch.tensor([-7.0, -6.0, -4.0, -2.0, 0.0, 1.0, -7.0, -5.0, -3.0, 3.0, -6.5, -1.0],
                              dtype=torch.float64)
    offset = 0 if mixtures == 1 else mixtures
    params[:, offset, 0, 0] = means
    params[:, offset + mixtures, 0, 0] = log_scales
    total = all_level_log_probs(lik, params, levels).exp().sum(dim=0)  # (N,)
    assert torch.allclose(total, torch.ones(n, dtype=torch.float64), atol=1e-5), total


def test_discretized_logistic_matches_cdf_differences_and_has_finite_gradients() -> None:
    lik = DiscretizedLogisticLikelihood(channels=1, levels=16, low=-1.0, high=1.0)
    mean, log_scale = torch.tensor([0.1]), torch.tensor([-1.5])
    params = torch.stack([mean, log_scale]).view(1, 2, 1, 1).repeat(16, 1, 1, 1)
    log_p = all_level_log_probs(lik, params[:1], 16)[:, 0]  # (L,)
    grid = torch.linspace(-1, 1, 16, dtype=torch.float64)
    half = 1.0 / 15
    cdf = torch.sigmoid((grid[:, None] + torch.tensor([-half, half], dtype=torch.float64) - 0.1) / math.exp(-1.5))
    expected = (cdf[:, 1] - cdf[:, 0]).clone()
    expected[0], expected[-1] = cdf[0, 1], 1 - cdf[-1, 0]
    assert torch.allclose(log_p.double().exp(), expected, atol=1e-6)
    # extreme parameters: a very sharp logistic far from the data, and a very flat one
    extreme = torch.tensor([[30.0, -7.0], [-30.0, -7.0], [0.0, 15.0]]).view(3, 2, 1, 1).requires_grad_(True)
    x = torch.tensor([-1.0, 1.0, 0.0 + 1.0 / 15]).view(3, 1, 1, 1)
    out = lik.log_prob(x, extreme)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(extreme.grad).all()


def test_quantized_samples_lie_on_the_level_grid_and_follow_the_model() -> None:
    lik = CategoricalLikelihood(channels=1, levels=5, low=0.0, high=1.0)
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.0001, 0.3999])).view(1, 5, 1, 1, 1).expand(4000, 5, 1, 1, 1)
    draws = lik.sample(logits, gen(3)).flatten()
    freq = torch.bincount(lik.to_level(draws), minlength=5).float() / draws.numel()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.0, 0.4]), atol=0.03)
    assert torch.allclose(lik.mean(logits[:1]).flatten(), torch.tensor([0.2 * 0.25 + 0.3 * 0.5 + 0.4]), atol=1e-3)
    logistic = DiscretizedLogisticLikelihood(channels=3, levels=256, low=0.0, high=1.0, mixtures=2)
    samples = logistic.sample(torch.randn(2, logistic.param_channels, 4, 4, generator=gen()), gen(1))
    assert samples.shape == (2, 3, 4, 4) and samples.min() >= 0 and samples.max() <= 1
    assert torch.allclose(samples * 255, (samples * 255).round(), atol=1e-4)


def test_sampling_is_reproducible_under_a_seeded_generator() -> None:
    for lik in [BernoulliLikelihood(1), GaussianLikelihood(1, std=0.1), CategoricalLikelihood(1, levels=4),
                DiscretizedLogisticLikelihood(1, levels=8)]:
        params = torch.randn(2, lik.param_channels, 3, 3, generator=gen())
        assert torch.equal(lik.sample(params, gen(5)), lik.sample(params, gen(5)))
        assert lik.mean(params).shape == (2, 1, 3, 3)


def test_bernoulli_sample_frequency_matches_its_mean() -> None:
    lik = BernoulliLikelihood(1)
    logits = torch.tensor([-2.0, 0.0, 1.5]).view(1, 1, 1, 3).expand(5000, 1, 1, 3)
    freq = lik.sample(logits, gen(7)).mean(dim=0).flatten()
    assert torch.allclose(freq, torch.sigmoid(torch.tensor([-2.0, 0.0, 1.5])), atol=0.03)


def test_registry_and_shape_errors() -> None:
    assert isinstance(make_likelihood("logistic", channels=3, mixtures=5), DiscretizedLogisticLikelihood)
    assert make_likelihood("logistic", channels=3, mixtures=5).param_channels == 5 * 7
    assert make_likelihood("categorical", channels=3, levels=256).param_channels == 768
    with pytest.raises(ValueError, match="unknown likelihood"):
        make_likelihood("poisson")
    with pytest.raises(ValueError, match="decoder output 2 channels"):
        GaussianLikelihood(1, scale="decoder").log_prob(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
