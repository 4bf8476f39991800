"""Multi-level (Jukebox / VQ-VAE-2) autoencoders: the autoencoder contract (tests/contracts.py) in both modes and
with speaker-conditioned decoders, one-level reconstruction, the modes' coupling, per-level settings, overfitting."""

from __future__ import annotations

import pytest
import torch

from audiolvm.bottleneck import IdentityBottleneck
from audiolvm.builders import build_model
from audiolvm.config import ConfigError, ModelConfig, SpeakerConfig, VQConfig
from audiolvm.models import MultiLevelAutoencoder
from audiolvm.models.audio_vqvae import audio_autoencoder
from tests.contracts import MultiLevelContract
from tests.helpers import SineDataset, tiny_objective


def model_config(mode: str, strides=([2, 2], [2], [2]), codes=(32,), width: int = 16) -> ModelConfig:
    return ModelConfig(mode=mode, strides=[list(s) for s in strides], width=width, depth=1,
                       vq=VQConfig(num_codes=list(codes), dim=8, beta=[0.25]))


class TestIndependentLevels(MultiLevelContract):
    def make_model(self) -> MultiLevelAutoencoder:
        return build_model(model_config("independent"))  # hops 4, 8, 16


class TestConditionedLevels(MultiLevelContract):
    def make_model(self) -> MultiLevelAutoencoder:
        return build_model(model_config("conditioned"))


class TestSpeakerConditionedLevels(MultiLevelContract):
    """Level 0's decoder takes the speaker (FiLM) and the level above (conditioned mode); a speaker adversary reads
    level 0's codes. Level 1 is not speaker-conditioned."""

    def make_model(self) -> MultiLevelAutoencoder:
        cfg = model_config("conditioned", strides=([2, 2], [2]))
        cfg.speaker = SpeakerConfig(levels=[0], dim=8, names=["a", "b", "c"], adversary=1.0, adversary_width=8)
        return build_model(cfg)


def trained(mode: str, **kw):
    torch.manual_seed(0)
    model = build_model(model_config(mode, **kw))
    model.train()
    model(0.3 * torch.randn(4, 1, 512))  # VQ initialisation from a first batch
    return model.eval()


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
