"""Properties of GaussianBottleneck: closed-form and Monte-Carlo KL, reparameterized sample
statistics, k-major sample layout, gradients and eval behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from audiolvm.bottleneck import GaussianBottleneck


def _stack(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return torch.cat([mean, logvar], dim=1)  # (B, 2D, *S)


def test_kl_matches_closed_form_for_known_parameters():
    mean = torch.tensor([[[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]]])  # (1, 2, 3)
    logvar = torch.tensor([[[0.0, math.log(2.0), 0.0], [math.log(0.5), 0.0, 0.0]]])
    # 0.5 * sum(mu^2 + var - 1 - log var) per element
    elements = [
        1 + 1 - 1 - 0,
        0 + 2 - 1 - math.log(2.0),
        4 + 1 - 1 - 0,
        0 + 0.5 - 1 - math.log(0.5),
        1 + 1 - 1 - 0,
        0 + 1 - 1 - 0,
    ]
    expected = 0.5 * sum(elements)
    result = GaussianBottleneck()(_stack(mean, logvar))
    assert result.losses["kl"].item() == pytest.approx(expected, rel=1e-6)
    assert result.metrics["kl_per_dim"].item() == pytest.approx(expected / 6, rel=1e-6)
    assert result.codes is None


def test_kl_matches_monte_carlo_estimate_from_log_densities():
    torch.manual_seed(0)
    mean, logvar = torch.randn(3, 4, 5), 0.5 * torch.randn(3, 4, 5)
    k = 20000
    z = GaussianBottleneck.sample(mean, logvar, k)  # (k*3, 4, 5)
    log_ratio = GaussianBottleneck.log_q(z, mean, logvar) - GaussianBottleneck.log_prior(z)  # (k*3,)
    mc = log_ratio.view(k, 3).mean(dim=0)  # (3,)
    analytic = GaussianBottleneck.kl(mean, logvar)
    assert torch.allclose(mc, analytic, atol=0.15, rtol=0.02)


def test_log_densities_match_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    z = GaussianBottleneck.sample(mean, logvar, 3)  # (6, 3, 4)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    expected_q = q.log_prob(z.view(3, 2, 3, 4)).flatten(2).sum(dim=2).reshape(-1)
    expected_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(dim=1)
    assert torch.allclose(GaussianBottleneck.log_q(z, mean, logvar), expected_q, atol=1e-4)
    assert torch.allclose(GaussianBottleneck.log_prior(z), expected_p, atol=1e-4)


def test_reparameterized_samples_have_posterior_mean_and_variance():
    torch.manual_seed(0)
    mean = torch.tensor([[[3.0], [-1.0]]])  # (1, 2, 1)
    logvar = torch.tensor([[[math.log(4.0)], [math.log(0.25)]]])
    z = GaussianBottleneck(samples=50000).train()(_stack(mean, logvar)).z  # (50000, 2, 1)
    assert torch.allclose(z.mean(dim=0).squeeze(), torch.tensor([3.0, -1.0]), atol=0.03)
    assert torch.allclose(z.var(dim=0).squeeze(), torch.tensor([4.0, 0.25]), rtol=0.03)


@pytest.mark.parametrize("spatial", [(7,), (3, 5)])
def test_k_samples_are_k_major(spatial):
    batch, dim, k = 3, 2, 4
    mean = torch.arange(batch, dtype=torch.float32).view(batch, 1, *([1] * len(spatial)))
    mean = mean.expand(batch, dim, *spatial)  # item b has mean b everywhere
    logvar = torch.full_like(mean, -20.0)  # std ~ 5e-5
    z = GaussianBottleneck(samples=k).train()(_stack(mean, logvar)).z
    assert z.shape == (k * batch, dim, *spatial)
    assert torch.allclose(z.view(k, batch, dim, *spatial), mean.expand(k, *mean.shape), atol=1e-3)


def test_gradient_flows_to_mean_and_logvar():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, requires_grad=True)
    result = GaussianBottleneck(samples=2).train()(x)
    (result.z.square().sum() + result.losses["kl"]).backward()
    mean_grad, logvar_grad = x.grad.chunk(2, dim=1)
    assert torch.all(mean_grad != 0) and torch.all(logvar_grad != 0)


def test_eval_returns_mean_unless_sampling_is_requested():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4), torch.zeros(2, 3, 4)
    x = _stack(mean, logvar)
    z = GaussianBottleneck(samples=2).eval()(x).z
    assert torch.equal(z, torch.cat([mean, mean]))
    sampled = GaussianBottleneck(samples=2, sample_in_eval=True).eval()(x).z
    assert sampled.shape == z.shape and not torch.allclose(sampled, z, atol=0.1)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="samples"):
        GaussianBottleneck(samples=0)
    with pytest.raises(ValueError, match="even number of channels"):
        GaussianBottleneck()(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="k stacked samples"):
        GaussianBottleneck.log_q(torch.randn(5, 2, 4), torch.randn(2, 2, 4), torch.zeros(2, 2, 4))
