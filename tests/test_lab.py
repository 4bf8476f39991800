"""The estimator lab: the properties each experiment demonstrates, and ``audiolvm lab`` writing its outputs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from audiolvm.lab import gradients, importance, mog
from audiolvm_pipelines import lab as lab_cli

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("mu", [(0.0, 0.0), (4.0, 6.5)])
@pytest.mark.parametrize("name", list(gradients.ESTIMATORS))
def test_gradient_estimators_are_unbiased(name: str, mu: tuple[float, float]) -> None:
    reps = 20000
    mean, cov = gradients.gradient_stats(gradients.ESTIMATORS[name], mu, 4, reps, torch.Generator().manual_seed(0))
    exact = gradients.exact_gradient(torch.tensor(mu, dtype=torch.float64))
    se = (cov.diagonal() / reps).sqrt()
    assert ((mean - exact).abs() < 3 * se).all(), (name, mu, mean.tolist(), exact.tolist(), se.tolist())


def test_pathwise_variance_is_below_score_function_variance() -> None:
    gen = torch.Generator().manual_seed(0)
    for samples in (1, 10):
        trace = {name: gradients.gradient_stats(est, (0.0, 0.0), samples, 2000, gen)[1].trace().item()
                 for name, est in gradients.ESTIMATORS.items()}
        assert trace["pathwise"] < min(trace["score"], trace["score+baseline"]) / 10, trace
        assert trace["pathwise"] == pytest.approx(8 / samples, rel=0.15)  # Cov = 4 I / S exactly


def test_leave_one_out_baseline_cuts_the_variance() -> None:
    gen = torch.Generator().manual_seed(1)
    plain = gradients.gradient_stats(gradients.score_gradient, (0.0, 0.0), 10, 2000, gen)[1].trace()
    loo = gradients.gradient_stats(gradients.score_baseline_gradient, (0.0, 0.0), 10, 2000, gen)[1].trace()
    assert loo < plain / 3


# ----------------------------------------------------------------------------- mixture of Gaussians


def test_mixture_log_prob_matches_torch_distributions() -> None:
    true = mog.true_mixture()
    x = true.sample(50, torch.Generator().manual_seed(0))
    ref = MixtureSameFamily(Categorical(true.weights), MultivariateNormal(true.means, scale_tril=true.scale_tril))
    torch.testing.assert_close(true.log_prob(x), ref.log_prob(x))


def test_match_components_undoes_a_permutation() -> None:
    means = mog.true_mixture().means
    perm = mog.match_components(means, means[[2, 0, 1]] + 0.1)
    torch.testing.assert_close(means[[2, 0, 1]][perm], means)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_fit_recovers_a_known_mixture(covariance: str) -> None:
    true = mog.true_mixture()
    if covariance == "diag":  # a mixture the diagonal model can represent exactly
        true = mog.MixtureParams(true.weights, true.means, torch.diag_embed(true.scale_tril.diagonal(dim1=1, dim2=2)))
    x = true.sample(1500, torch.Generator().manual_seed(5))
    fit = mog.fit_mixture(x, 3, covariance, steps=300, lr=0.03, seed=7)
    fitted = fit.params.permuted(mog.match_components(true.means, fit.params.means))
    assert (fitted.means - true.means).norm(dim=1).max() < 0.2
    assert (fitted.weights - true.weights).abs().max() < 0.05
    assert abs(fit.curve[-1].item() - true.log_prob(x).mean().item()) < 0.02
    assert fit.curve[-1] > fit.curve[0] + 0.5  # it really learned


def test_diagonal_model_cannot_reach_a_correlated_mixture() -> None:
    result = mog.run_mog(mog.MixtureConfig(steps=300, samples=1000, covariance="diag"))
    assert result.fit.curve[-1] < result.true_loglik - 0.1  # components 0 and 1 are correlated


# ----------------------------------------------------------------------------- importance sampling


@pytest.fixture(scope="module")
def linear_gaussian() -> tuple[importance.LinearGaussian, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    model = importance.LinearGaussian.random(2, 6, 0.7, gen)
    return model, model.sample(gen)


def test_exact_marginal_and_joint_match_torch_distributions(linear_gaussian) -> None:
    model, x = linear_gaussian
    cov = model.W @ model.W.T + model.sigma**2 * torch.eye(len(x), dtype=torch.float64)
    assert model.log_marginal(x) == pytest.approx(MultivariateNormal(model.b, cov).log_prob(x).item(), abs=1e-10)
    z = torch.randn(5, 2, dtype=torch.float64)
    lik = torch.distributions.Normal(z @ model.W.T + model.b, model.sigma).log_prob(x).sum(-1)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    torch.testing.assert_close(model.log_joint(x, z), lik + prior)


@pytest.mark.parametrize("k", [1, 10])
def test_posterior_proposal_is_exact_with_zero_variance(linear_gaussian, k: int) -> None:
    model, x = linear_gaussian
    est = importance.importance_log_estimates(model, x, model.posterior(x), k, 100, torch.Generator().manual_seed(1))
    assert est.std().item() < 1e-10
    assert (est - model.log_marginal(x)).abs().max().item() < 1e-10


def test_prior_sampling_is_biased_low_and_the_bias_shrinks_with_k(linear_gaussian) -> None:
    model, x = linear_gaussian
    gen, exact, reps = torch.Generator().manual_seed(2), model.log_marginal(x), 400
    bias, se = {}, {}
    for k in (1, 10, 1000):
        est = importance.importance_log_estimates(model, x, model.prior, k, reps, gen)
        bias[k], se[k] = est.mean().item() - exact, est.std().item() / math.sqrt(reps)
    assert bias[1] < -3 * se[1] and bias[10] < -3 * se[10]  # Jensen: E[log p_K] < log p
    assert abs(bias[1000]) < abs(bias[10]) < abs(bias[1])


def test_fitted_proposal_beats_the_prior() -> None:
    result = importance.run_importance(importance.ImportanceConfig(reps=100, max_k=10))
    prior, fitted = result.estimators["prior"], result.estimators["fitted"]
    assert result.elbo < result.exact
    assert fitted.std[0] < prior.std[0] and abs(fitted.bias[0]) < abs(prior.bias[0])


# ----------------------------------------------------------------------------- CLI

CLI_ARGS = {
    "mog": ["--steps", "20", "--samples", "300"],
    "is": ["--steps", "5", "--reps", "20", "--max-k", "100"],
    "gradients": ["--steps", "10", "--reps", "50", "--max-samples", "10", "--samples", "1", "5", "--start", "-1", "0"],
}


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="audiolvm lab")
    lab_cli.add_parser(parser)
    return lab_cli.run(parser.parse_args(argv))


@pytest.mark.parametrize("name", list(CLI_ARGS))
def test_cli_writes_png_and_json(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli([name, "--out", str(tmp_path), *CLI_ARGS[name]]) == 0
    png, record = tmp_path / f"{name}.png", json.loads((tmp_path / f"{name}.json").read_text())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["experiment"] == name and record["config"]["steps"] == int(CLI_ARGS[name][1])
    assert record["results"] and capsys.readouterr().out.strip()


def test_cli_is_deterministic_under_seed(tmp_path: Path) -> None:
    args = ["gradients", *CLI_ARGS["gradients"], "--seed", "4", "--out"]
    for sub in ("a", "b"):
        assert run_cli([*args, str(tmp_path / sub)]) == 0
    a, b = ((tmp_path / s / "gradients.json").read_text() for s in ("a", "b"))
    assert a == b and json.loads(a)["config"]["start"] == [-1.0, 0.0]
