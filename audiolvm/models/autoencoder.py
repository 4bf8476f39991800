"""``Autoencoder(encoder, bottleneck, decoder)``: the composition every audiolvm autoencoder uses.

The parts are constructor arguments (as in EnCodec), so a VQ-VAE, a VAE and a plain autoencoder
differ only in the bottleneck they are given. ``builders.py`` turns config into these objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.bottleneck.base import Bottleneck, BottleneckResult
from audiolvm.core.errors import UnsupportedError, UsageError
from audiolvm.nn.mode import eval_mode


@dataclass
class AutoencoderOutput:
    """``recon``: ``Tensor[B x C x T]`` cropped to the input length; ``bottleneck``: its result."""

    recon: torch.Tensor
    bottleneck: BottleneckResult


class Autoencoder(nn.Module):
    """Encoder -> bottleneck -> decoder over channels-first signals.

    Args:
        encoder: ``Tensor[B x C x T]`` -> ``Tensor[B x D x T / hop]``.
        bottleneck: any :class:`Bottleneck`.
        decoder: ``Tensor[B x D x N]`` -> ``Tensor[B x C x N * hop]``.
        hop: total downsampling of the last axis. Inputs of any length are zero-padded on the
            right to a multiple of ``hop`` and the output is cropped back.
    """

    def __init__(self, encoder: nn.Module, bottleneck: Bottleneck, decoder: nn.Module, hop: int = 1) -> None:
        super().__init__()
        if hop < 1:
            raise UsageError(f"hop must be >= 1, got {hop}")
        self.encoder, self.bottleneck, self.decoder, self.hop = encoder, bottleneck, decoder, hop

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad the last axis on the right to a multiple of ``hop``."""
        extra = (-x.shape[-1]) % self.hop
        return F.pad(x, (0, extra)) if extra else x

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        length = x.shape[-1]
        result = self.bottleneck(self.encoder(self.pad(x)))  # z: (B, D, ceil(T / hop))
        recon = self.decoder(result.z)[..., :length]  # (B, C, T)
        return AutoencoderOutput(recon=recon, bottleneck=result)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``Tensor[B x C x T]`` -> codes ``LongTensor[B x ceil(T / hop)]`` (discrete bottlenecks only)."""
        if not self.bottleneck.discrete:
            raise UnsupportedError(f"{type(self.bottleneck).__name__} produces no codes; use a VQ bottleneck")
        with eval_mode(self), torch.no_grad():
            return self.bottleneck(self.encoder(self.pad(x))).codes

    def decode_codes(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """codes ``LongTensor[B x N]`` -> ``Tensor[B x C x N * hop]`` (cropped to ``length`` if given)."""
        out = self.decoder(self.bottleneck.embed(codes))
        return out if length is None else out[..., :length]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode reconstruction of ``Tensor[B x C x T]`` with no state updates."""
        with eval_mode(self):
            return self(x).recon
