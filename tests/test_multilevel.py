"""Multi-level (Jukebox / VQ-VAE-2) autoencoders: code lengths, modes, round trips, overfitting."""

from __future__ import annotations

import pytest
import torch

from audiolvm.bottleneck import IdentityBottleneck
from audiolvm.builders import build_model
from audiolvm.config import ConfigError, ModelConfig, VQConfig
from audiolvm.models import MultiLevelAutoencoder
from audiolvm.models.audio_vqvae import audio_autoencoder
from tests.helpers import SineDataset, tiny_objective


def model_config(mode: str, strides=([2, 2], [2], [2]), codes=(32,), width: int = 16) -> ModelConfig:
    return ModelConfig(mode=mode, strides=[list(s) for s in strides], width=width, depth=1,
                       vq=VQConfig(num_codes=list(codes), dim=8, beta=[0.25]))


def trained(mode: str, **kw):
    torch.manual_seed(0)
    model = build_model(model_config(mode, **kw))
    model.train()
    model(0.3 * torch.randn(4, 1, 512))  # VQ initialisation from a first batch
    return model.eval()


@pytest.mark.parametrize("mode", ["independent", "conditioned"])
def test_code_lengths_are_ceil_t_over_hop(mode: str) -> None:
    model = trained(mode, strides=([2, 2, 2], [2, 2], [2, 2]))
    assert model.hops == [8, 32, 128]
    for length in (1, 7, 128, 129, 1000, 1031):
        x = torch.randn(2, 1, length)
        codes = model.encode(x)
        assert [c.shape for c in codes] == [(2, -(-length // h)) for h in model.hops]
        assert all(r.shape == x.shape for r in model.reconstruct(x))


@pytest.mark.parametrize("mode", ["independent", "conditioned"])
def test_codes_round_trip_to_the_eval_reconstruction(mode: str) -> None:
    model = trained(mode)
    x = 0.3 * torch.randn(2, 1, 777)
    codes = model.encode(x)
    recons = model.reconstruct(x)
    for level in range(model.num_levels):
        decoded = model.decode(codes, level=level, length=777)
        torch.testing.assert_close(decoded, recons[level], rtol=0, atol=1e-6)
        torch.testing.assert_close(model.reconstruct(x, level=level), recons[level], rtol=0, atol=1e-6)


def test_levels_are_independent_only_in_independent_mode() -> None:
    x = 0.3 * torch.randn(1, 1, 256)
    for mode, coupled in (("independent", False), ("conditioned", True)):
        model = trained(mode)
        before = model.reconstruct(x)
        with torch.no_grad():
            for p in model.levels[1].encoder.parameters():
                p.add_(0.5 * torch.randn_like(p))
        after = model.reconstruct(x)
        assert torch.equal(before[2], after[2])  # the top level never depends on level 1
        assert (not torch.equal(before[0], after[0])) == coupled, mode


def test_conditioned_decoding_needs_the_upper_codes() -> None:
    model = trained("conditioned")
    codes = model.encode(torch.randn(1, 1, 64))
    with pytest.raises(ValueError, match="needs level 1"):
        model.decode([codes[0], None, codes[2]], level=0)


def test_per_level_settings_and_their_errors() -> None:
    model = build_model(model_config("independent", codes=(16, 32, 64)))
    assert [lv.bottleneck.num_codes for lv in model.levels] == [16, 32, 64]
    with pytest.raises(ConfigError, match="num_codes has 2 values for 3 levels"):
        build_model(model_config("independent", codes=(16, 32)))
    levels = [audio_autoencoder(IdentityBottleneck(), 4, 8, s, 1) for s in ([2], [3])]  # hops 2 and 3
    with pytest.raises(ValueError, match="divide"):
        MultiLevelAutoencoder(levels, mode="conditioned", latent_dim=4)


@pytest.mark.parametrize("mode", ["independent", "conditioned"])
def test_both_modes_overfit_one_batch(mode: str) -> None:
    torch.manual_seed(0)
    model = build_model(model_config(mode, codes=(128,), width=32))
    objective = tiny_objective({"waveform": 1.0, "vq/commitment": 1.0})
    ds = SineDataset(n=4, length=1024, seed=5)
    batch = {"audio": torch.stack([ds[i]["audio"] for i in range(4)])}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(300):
        out = objective(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in out.items() if k.endswith("waveform")})
    for level in range(3):
        key = f"l{level}/waveform"
        first, last = history[0][key], sum(h[key] for h in history[-5:]) / 5
        assert last < first / 10, f"{mode} level {level}: {first:.4f} -> {last:.4f}"
