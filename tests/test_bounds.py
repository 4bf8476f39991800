"""Bounds and estimators: closed-form vs Monte Carlo KL, IWAE at k=1 is the ELBO, L_k grows with k,
the STL / DReG / standard surrogates have their definitions' gradients, free bits, capacity and
warm-up schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiolvm.bottleneck import GaussianBottleneck
from audiolvm.losses.bounds import (
    CyclicalSchedule,
    LinearSchedule,
    elbo_analytic,
    free_bits_kl,
    iwae_bound,
    kl_penalty,
    log_weights,
    make_schedule,
)
from audiolvm.losses.likelihoods import GaussianLikelihood
from audiolvm.models.vae import VAE
from audiolvm.models.vae_objective import item_bound, sample_log_densities

X_DIM, Z_DIM = 5, 2


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_vae(samples: int = 1, seed: int = 0) -> VAE:
    """Linear encoder and decoder with a deliberately poor posterior (so bounds differ clearly with k)."""
    torch.manual_seed(seed)
    encoder, decoder = nn.Linear(X_DIM, 2 * Z_DIM), nn.Linear(Z_DIM, X_DIM)
    with torch.no_grad():
        decoder.weight.mul_(3.0)
        encoder.bias[Z_DIM:] = -1.0  # posterior std e^-0.5: narrower than the true one
    lik = GaussianLikelihood(X_DIM, scale="fixed", std=0.5)
    return VAE(encoder, GaussianBottleneck(samples=samples), decoder, lik, latent_shape=(Z_DIM,)).train()


def data(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, X_DIM, generator=torch.Generator().manual_seed(11))


# ------------------------------------------------------------------------------------------ KL, k = 1


def test_closed_form_kl_agrees_with_monte_carlo_within_four_standard_errors() -> None:
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 4, 2, generator=g), 0.8 * torch.randn(3, 4, 2, generator=g)
    n = 20000
    z = GaussianBottleneck.sample(mean, logvar, n, g)  # (n*3, 4, 2)
    ratio = (GaussianBottleneck.log_q(z, mean, logvar) - GaussianBottleneck.log_prior(z)).view(n, 3)
    mc, se = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    analytic = GaussianBottleneck.kl(mean, logvar)
    assert ((mc - analytic).abs() < 4 * se).all(), (mc, analytic, se)
    assert torch.allclose(GaussianBottleneck.kl_elements(mean, logvar).flatten(1).sum(1), analytic)


def test_iwae_bound_at_k1_is_the_full_density_elbo_and_the_analytic_elbo_in_expectation() -> None:
    model, x = tiny_vae(samples=1), data()
    torch.manual_seed(1)
    out = model(x)
    dens = sample_log_densities(out)
    log_w = log_weights(out.log_px_z, dens["log_pz"], dens["log_q"], 1)  # (1, B)
    assert torch.equal(iwae_bound(log_w), log_w[0])
    # in expectation: E[log p(x|z) + log p(z) - log q(z|x)] = E[log p(x|z)] - KL
    n = 4000
    model.bottleneck.samples = n
    with torch.no_grad():
        out = model(x)
    dens = sample_log_densities(out)
    full = log_weights(out.log_px_z, dens["log_pz"], dens["log_q"], n)  # (n, B)
    analytic = elbo_analytic(out.log_px_z.view(n, -1), GaussianBottleneck.kl(out.mean, out.logvar))  # (n, B)
    diff = full - analytic  # zero-mean per item, variance from the MC KL
    assert (diff.mean(0).abs() < 4 * diff.std(0) / math.sqrt(n)).all()
    assert diff.std(0).min() > 0  # the two estimators really are different


def test_iwae_bound_is_non_decreasing_in_k_over_many_seeds() -> None:
    x = data(batch=6)
    bounds: dict[int, torch.Tensor] = {}
    for k in (1, 5, 50):
        model = tiny_vae(samples=k)
        values = []
        with torch.no_grad():
            for seed in range(200):
                torch.manual_seed(1000 + seed)
                out = model(x)
                dens = sample_log_densities(out)
                values.append(iwae_bound(log_weights(out.log_px_z, dens["log_pz"], dens["log_q"], k)).mean())
        bounds[k] = torch.stack(values)  # (seeds,)
    means = {k: v.mean().item() for k, v in bounds.items()}
    for small, large in [(1, 5), (5, 50)]:
        se = math.sqrt((bounds[small].var() + bounds[large].var()).item() / 200)
        assert means[large] - means[small] > 3 * se, (means, se)


# ------------------------------------------------------------------------------------------ estimators


def per_sample_definitions(model: VAE, x: torch.Tensor, seed: int) -> dict[str, list[torch.Tensor]]:
    """Encoder and decoder gradients of each estimator, built from per-sample autograd of log w_k."""
    torch.manual_seed(seed)
    out = model(x)
    k, batch = out.samples, x.shape[0]
    dens = sample_log_densities(out)
    log_w = (out.log_px_z + dens["log_pz"] - dens["log_q"]).view(k, batch)
    log_w_stop = (out.log_px_z + dens["log_pz"] - dens["log_q_stop"]).view(k, batch)
    w = torch.softmax(log_w.detach(), dim=0)
    enc, dec = list(model.encoder.parameters()), list(model.decoder.parameters())
    zeros = [torch.zeros_like(p) for p in enc + dec]
    defs = {name: [z.clone() for z in zeros] for name in ("standard", "stl", "dreg")}
    for i in range(k):
        for b in range(batch):
            g_full = torch.autograd.grad(log_w[i, b], enc + dec, retain_graph=True)
            g_stop = torch.autograd.grad(log_w_stop[i, b], enc, retain_graph=True)
            for j, g in enumerate(g_full):
                defs["standard"][j] += w[i, b] * g
                if j >= len(enc):  # decoder: plain normalised weights for every estimator
                    defs["stl"][j] += w[i, b] * g
                    defs["dreg"][j] += w[i, b] * g
            for j, g in enumerate(g_stop):
                defs["stl"][j] += w[i, b] * g
                defs["dreg"][j] += w[i, b] ** 2 * g
    return defs


def surrogate_gradients(model: VAE, x: torch.Tensor, seed: int, estimator: str) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    out = model(x)
    bound = item_bound(out, estimator).sum()
    return list(torch.autograd.grad(bound, list(model.encoder.parameters()) + list(model.decoder.parameters())))


@pytest.mark.parametrize("estimator", ["standard", "stl", "dreg"])
def test_surrogate_gradients_equal_the_estimator_definitions(estimator: str) -> None:
    model, x = tiny_vae(samples=6), data(batch=3)
    definition = per_sample_definitions(model, x, seed=5)[estimator]
    surrogate = surrogate_gradients(model, x, seed=5, estimator=estimator)
    for got, want in zip(surrogate, definition, strict=True):
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (estimator, got, want)


def test_the_three_encoder_gradients_really_differ_and_the_standard_one_is_autograd_of_the_bound() -> None:
    model, x = tiny_vae(samples=6), data(batch=3)
    grads = {e: surrogate_gradients(model, x, 5, e) for e in ("standard", "stl", "dreg")}
    enc_weight = 0  # first encoder parameter
    assert not torch.allclose(grads["standard"][enc_weight], grads["stl"][enc_weight], atol=1e-4)
    assert not torch.allclose(grads["stl"][enc_weight], grads["dreg"][enc_weight], atol=1e-4)
    torch.manual_seed(5)
    out = model(x)
    dens = sample_log_densities(out)
    bound = iwae_bound(log_weights(out.log_px_z, dens["log_pz"], dens["log_q"], 6)).sum()
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    for got, want in zip(grads["standard"], torch.autograd.grad(bound, params), strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_surrogate_values_equal_the_bound_for_every_estimator() -> None:
    model, x = tiny_vae(samples=4), data()
    values = []
    for estimator in ("standard", "stl", "dreg"):
        torch.manual_seed(3)
        values.append(item_bound(model(x), estimator).detach())
    assert torch.allclose(values[0], values[1]) and torch.allclose(values[0], values[2])


# ------------------------------------------------------------------------------------------ KL shaping


def test_free_bits_clamp_each_dimensions_batch_mean_and_stop_its_gradient() -> None:
    # batch-mean KL per dim: [0.05, 0.5, 0.2, 2.0]; floor 0.25 -> 0.25 + 0.5 + 0.25 + 2.0
    kl = torch.tensor([[0.0, 0.4, 0.1, 1.0], [0.1, 0.6, 0.3, 3.0]], requires_grad=True)  # (B=2, D=4)
    value = free_bits_kl(kl, 0.25)
    assert value.item() == pytest.approx(3.0)
    value.backward()
    assert torch.equal(kl.grad, torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.5, 0.0, 0.5]]))
    # a dim whose mean is above the floor keeps its gradient even if single items are below it
    assert free_bits_kl(kl.detach(), 0.0).item() == pytest.approx(kl.detach().mean(0).sum().item())


def test_capacity_penalty_pulls_kl_towards_the_target_from_both_sides() -> None:
    for kl_value, sign in [(1.0, -1.0), (5.0, 1.0)]:
        kl = torch.tensor(kl_value, requires_grad=True)
        penalty = kl_penalty(kl, 4.0, capacity=3.0)
        assert penalty.item() == pytest.approx(4.0 * abs(kl_value - 3.0))
        penalty.backward()
        assert kl.grad.item() == pytest.approx(4.0 * sign)
    assert kl_penalty(torch.tensor(2.0), 0.5).item() == pytest.approx(1.0)


def test_linear_schedule_hits_its_end_points_and_holds() -> None:
    s = LinearSchedule(start=0.0, end=1.0, steps=100, delay=20)
    assert s(0) == 0.0 and s(20) == 0.0 and s(70) == pytest.approx(0.5) and s(120) == 1.0 and s(10**6) == 1.0
    capacity = make_schedule("linear", start=0.5, end=25.0, steps=1000)
    assert capacity(0) == 0.5 and capacity(1000) == 25.0


def test_cyclical_schedule_restarts_each_period_and_ends_high() -> None:
    s = CyclicalSchedule(period=100, ramp=0.5, low=0.0, high=1.0, cycles=3)
    assert [s(0), s(25), s(50), s(99)] == [0.0, 0.5, 1.0, 1.0]
    assert s(100) == 0.0 and s(150) == 1.0 and s(200) == 0.0
    assert s(300) == 1.0 and s(10**6) == 1.0  # after the last cycle
    assert make_schedule("constant", value=0.3)(12345) == 0.3
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("cosine")


@pytest.mark.parametrize("schedule", [LinearSchedule(start=0.2, end=1.0, steps=100, delay=20),
                                      CyclicalSchedule(period=100, ramp=0.5, low=0.1, high=1.0, cycles=3),
                                      CyclicalSchedule(period=40, ramp=0.25)])
def test_schedules_give_the_same_values_at_a_tensor_step(schedule) -> None:  # noqa: ANN001
    """The VAE reads its step counter as a tensor (no host sync; one graph under torch.compile): every schedule
    must give at a 0-dim long tensor the value it gives at the int."""
    for step in [0, 1, 19, 20, 21, 50, 99, 100, 150, 299, 300, 301, 10**6]:
        value = schedule(torch.tensor(step))
        assert isinstance(value, torch.Tensor) and value.dim() == 0
        assert float(value) == pytest.approx(schedule(step), abs=1e-6), step
