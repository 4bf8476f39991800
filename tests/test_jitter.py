"""Time jitter on the codes a decoder reads (``model.jitter``, Chorowski et al. 2019)."""

from __future__ import annotations

import pytest
import torch

from audiolvm.bottleneck.jitter import time_jitter
from audiolvm.builders import build_model
from audiolvm.config import ConfigError, ModelConfig, VQConfig


def frames(b: int = 64, n: int = 200) -> torch.Tensor:
    """``Tensor[B x 2 x N]`` whose frame t holds the value t in both channels: a frame's source is readable."""
    return torch.arange(n, dtype=torch.float32).expand(b, 2, n).clone()


def test_jitter_zero_is_the_identity() -> None:
    z = torch.randn(3, 4, 50)
    assert time_jitter(z, 0.0) is z


@pytest.mark.parametrize("p", [0.12, 0.5])
def test_jitter_replaces_frames_by_immediate_neighbours_at_rate_p(p: float) -> None:
    z = frames()
    out = time_jitter(z, p, torch.Generator().manual_seed(0))
    source = out[:, 0]  # (B, N): which frame each output frame came from
    assert torch.equal(out[:, 0], out[:, 1])  # a whole frame vector moves, not single channels
    offset = source - torch.arange(200.0)
    assert set(offset.unique().tolist()) <= {-1.0, 0.0, 1.0}
    inner = offset[:, 1:-1]  # edge frames can only move inward
    moved = (inner != 0).float().mean().item()
    assert moved == pytest.approx(p, abs=0.02)
    assert (inner == -1).float().mean().item() == pytest.approx(p / 2, abs=0.015)


def test_model_jitters_the_decoder_input_only_in_training_and_config_is_checked() -> None:
    def decoder_input_vs_codes(jitter: float, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model(ModelConfig(strides=[[4, 4]], width=8, depth=1, vq=VQConfig(num_codes=[16], dim=8),
                                        jitter=jitter)).train(train)
        seen = []
        decoder = model.levels[0].decoder
        decoder.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
        with torch.set_grad_enabled(train):
            out = model(torch.randn(2, 1, 1600))
        return seen[0], out.levels[0].bottleneck.z.detach()

    read, codes = decoder_input_vs_codes(0.5, train=True)
    assert not torch.equal(read, codes)  # the decoder read neighbours' vectors ...
    assert all(any(torch.equal(read[b, :, t], codes[b, :, s]) for s in (t - 1, t, t + 1) if 0 <= s < codes.shape[-1])
               for b in range(2) for t in range(codes.shape[-1]))  # ... and only immediate ones
    assert torch.equal(*decoder_input_vs_codes(0.5, train=False))  # eval: the codes themselves
    assert torch.equal(*decoder_input_vs_codes(0.0, train=True))
    with pytest.raises(ConfigError, match="model.jitter"):
        build_model(ModelConfig(strides=[[4, 4]], width=8, depth=1, vq=VQConfig(num_codes=[16], dim=8), jitter=1.5))
