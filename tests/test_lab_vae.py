"""The lab's VAE experiments: the IWAE bound against k (``iwae-k``) and posterior collapse (``collapse``)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch

from audiolvm.lab import collapse, iwae_bound
from audiolvm.models.vae_objective import VAEObjective
from audiolvm_pipelines import lab as lab_cli

torch.set_num_threads(1)

DIVISOR_KS = (1, 2, 4, 20, 100, 200)  # each divides the next: the grouped curve cannot fall, per item


# ----------------------------------------------------------------------------- iwae-k


def test_grouped_bound_rises_along_divisors_and_hits_both_ends() -> None:
    log_w = 3.0 * torch.randn(200, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # (K, B)
    curve = torch.stack([iwae_bound.grouped_bound(log_w, k) for k in DIVISOR_KS])  # (len(ks), B)
    assert (curve.diff(dim=0) > 0).all()  # strictly, for weights that are not all equal
    torch.testing.assert_close(curve[0], log_w.mean(0))  # L_1: the mean log weight (the ELBO estimate)
    torch.testing.assert_close(curve[-1], torch.logsumexp(log_w, 0) - math.log(200))  # L_K: the IS estimate


@pytest.fixture(scope="module")
def tiny_vae() -> iwae_bound.VAE:
    torch.manual_seed(0)
    model = iwae_bound.mlp_vae(latent_dim=2, hidden=(32,))
    train, _ = iwae_bound.digits_tensors()
    iwae_bound.train_vae(model, train, VAEObjective(), steps=150, batch_size=100, lr=3e-3, seed=0)
    return model


def test_iwae_curve_of_a_given_model_rises_and_stays_below_log_px(tiny_vae) -> None:
    config = iwae_bound.IWAEConfig(ks=DIVISOR_KS, pool=200, test_items=100)
    result = iwae_bound.run_iwae_k(config, model=tiny_vae)
    assert result.train_elbo is None  # the given model was not retrained
    assert result.per_item_drops == 0
    assert all(b < c for b, c in zip(result.bounds, result.bounds[1:], strict=False))
    assert max(result.bounds) <= result.reference + 3 * result.reference_mc_se
    assert result.bounds[0] < result.reference - 0.1  # the ELBO gap of a 2-d latent VAE is real
    # few items' ELBO beats their log p(x) estimate; the pool's L_K and the reference are exchangeable (~ half)
    assert result.above_reference[0] < 0.1
    assert 0.25 < result.above_reference[-1] < 0.75


# ----------------------------------------------------------------------------- collapse

TINY_COLLAPSE = dict(steps=80, batch_size=50, channels=8, layers=2, latent_dim=4, cond_channels=4, warmup_steps=40,
                     is_samples=5)


def test_collapse_free_bits_keeps_more_information_than_no_remedy() -> None:
    # Checked for seeds 0, 1, 2: KL(free bits) / KL(none) was 15.6, 16.8 and 9.3; active units 4 >= 3, 4 >= 2, 3 >= 3.
    result = collapse.run_collapse(collapse.CollapseConfig(seed=0, **TINY_COLLAPSE))
    assert list(result.remedies) == list(collapse.REMEDIES)
    for name, r in result.remedies.items():
        numbers = [r.kl, r.mutual_information, r.elbo, r.nll, *r.kl_per_dim, *r.kl_curve]
        assert all(math.isfinite(v) for v in numbers), name
        assert len(r.kl_curve) == TINY_COLLAPSE["steps"] and len(r.kl_per_dim) == TINY_COLLAPSE["latent_dim"]
    none, free = result.remedies["none"], result.remedies["free_bits"]
    assert free.kl > 3 * none.kl
    assert free.active_units >= none.active_units


# ----------------------------------------------------------------------------- CLI

CLI_ARGS = {
    "iwae-k": ["--steps", "20", "--hidden", "16", "--latent-dim", "2", "--pool", "20", "--ks", "1", "2", "10", "20",
               "--test-items", "40"],
    "collapse": ["--steps", "6", "--channels", "4", "--layers", "1", "--latent-dim", "2", "--cond-channels", "2",
                 "--warmup-steps", "3", "--is-samples", "2"],
}


@pytest.mark.parametrize("name", list(CLI_ARGS))
def test_cli_writes_png_and_json(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="audiolvm lab")
    lab_cli.add_parser(parser)
    assert lab_cli.run(parser.parse_args([name, "--out", str(tmp_path), *CLI_ARGS[name]])) == 0
    png, record = tmp_path / f"{name}.png", json.loads((tmp_path / f"{name}.json").read_text())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert record["experiment"] == name
    if name == "iwae-k":
        assert record["config"]["ks"] == [1, 2, 10, 20] and len(record["results"]["bounds"]) == 4
        assert "reference log p(x)" in capsys.readouterr().out
    else:
        assert set(record["results"]) == set(collapse.REMEDIES)
        assert len(record["results"]["none"]["kl_curve"]) == 6
        assert "free_bits" in capsys.readouterr().out
