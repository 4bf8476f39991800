"""The sampling chain: per-level generators, start codes, per-level settings and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audiolvm.builders import build_model
from audiolvm.config import load_config
from audiolvm.models.chain import ChainStage, SamplingChain, SamplingSettings, per_level
from audiolvm.models.priors import CausalTransformerPrior, UpsamplerPrior

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chain() -> SamplingChain:
    cfg = load_config(ROOT / "configs" / "tiny" / "speech_vqvae.yaml", ["model.strides=[[2, 4], [4]]",
                                                                       "model.vq.num_codes=[16, 8]"])
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    top = CausalTransformerPrior(8, context=32, dim=16, layers=1, heads=2, num_labels=2)
    up = UpsamplerPrior(16, 8, upsample=4, context=32, dim=16, layers=1, heads=2)
    return SamplingChain(model, [ChainStage(top, 1, None, ["a", "b"]), ChainStage(up, 0, 1)], 16000)


def test_levels_draw_from_their_own_generators(chain: SamplingChain) -> None:
    s = SamplingSettings(seed=3)
    full = chain.sample_codes(2, 0.1, "b", s, progress=False)
    assert full[1].shape == (2, chain.length(1, 0.1)) and full[0].shape == (2, chain.length(0, 0.1))
    # resuming from the top codes reproduces the lower level exactly; other top codes change it
    assert torch.equal(chain.sample_codes(2, 0.1, "b", s, start={1: full[1]}, progress=False)[0], full[0])
    other_top = (full[1] + 1) % 8
    assert not torch.equal(chain.sample_codes(2, 0.1, "b", s, start={1: other_top}, progress=False)[0], full[0])
    # per-level settings: changing only the lower level's seed keeps the top level's draws
    mixed = {1: s, 0: SamplingSettings(seed=4)}
    again = chain.sample_codes(2, 0.1, "b", mixed, progress=False)
    assert torch.equal(again[1], full[1]) and not torch.equal(again[0], full[0])
    wave = chain.decode(full, seconds=0.1)
    assert wave.shape == (2, 1, 1600)


def test_chain_refuses_what_it_cannot_sample(chain: SamplingChain) -> None:
    model, (top, up) = chain.model, chain.stages
    with pytest.raises(ValueError, match="K=8, the VQ-VAE's level has K=16"):
        SamplingChain(model, [ChainStage(top.prior, 0)], 16000)
    with pytest.raises(ValueError, match="top-down"):
        SamplingChain(model, [up, top], 16000)
    alone = SamplingChain(model, [up], 16000)  # an upsampler alone needs the upper codes as start codes
    with pytest.raises(ValueError, match="needs level 1's codes"):
        alone.sample_codes(1, 0.1, progress=False)
    with pytest.raises(KeyError, match="'c' is not one of"):
        chain.sample_codes(1, 0.1, "c", progress=False)
    with pytest.raises(ValueError, match="start codes of level 1 have shape"):
        chain.sample_codes(1, 0.1, "a", start={1: torch.zeros(1, 3, dtype=torch.long)}, progress=False)


def test_per_level_settings_from_top_down_lists() -> None:
    got = per_level([2, 1], [1.0, 0.8], [0.9], seed=5)
    assert got == {2: SamplingSettings(1.0, None, 0.9, 5), 1: SamplingSettings(0.8, None, 0.9, 5)}
    with pytest.raises(ValueError, match="one per sampled level"):
        per_level([2, 1], [1.0, 0.9, 0.8], [0.9])
