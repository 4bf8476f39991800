"""Time jitter on quantized codes (Chorowski et al. 2019, "Unsupervised speech representation learning using
WaveNet autoencoders"): in training, each code frame is replaced by its left or right neighbour with probability
``p / 2`` each. The decoder can then not rely on the exact position of a code, which pushes the codes toward slowly
varying, phone-like content; the paper found it raised phone accuracy of the units."""

from __future__ import annotations

import torch

from audiolvm.core.errors import UsageError


def time_jitter(z: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z : Tensor[B x D x N]`` with each frame ``t`` replaced by frame ``t - 1`` or ``t + 1`` with probability
    ``p / 2`` each (per item; a replacement that would leave the sequence keeps the frame). ``p = 0``: ``z``
    itself. Draws from ``generator`` (default: the global RNG, which checkpoints save)."""
    if not 0.0 <= p <= 1.0:
        raise UsageError(f"jitter probability must be in [0, 1], got {p}")
    if p == 0.0 or z.shape[-1] < 2:
        return z
    b, _, n = z.shape
    u = torch.rand(b, n, device=z.device, generator=generator)  # (B, N)
    shift = (u < p / 2).long() * -1 + ((u >= p / 2) & (u < p)).long()  # -1 with p/2, +1 with p/2, else 0
    index = (torch.arange(n, device=z.device)[None] + shift).clamp(0, n - 1)  # (B, N)
    return z.gather(-1, index[:, None].expand_as(z))
