"""The interface every autoregressive prior over discrete codes implements.

A prior models ``p(codes | cond)`` for one level's code sequence ``LongTensor[B x N]`` (or a code map
``LongTensor[B x H x W]`` for image priors, in raster order). ``cond`` is a dict that may hold:

* ``"label"``: ``LongTensor[B]``, a global class (speaker, artist, genre);
* ``"upper"``: ``LongTensor[B x M]``, the codes of the level above (upsampler priors).

All priors plug into the same engine: ``loss`` is the step function's core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

Cond = Mapping[str, torch.Tensor] | None


class Prior(nn.Module):
    """Base class of the code priors (causal transformer, upsampler, gated PixelCNNs)."""

    #: codebook size K of the modelled level
    num_codes: int

    def logits(self, codes: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """Teacher-forced next-code logits ``Tensor[B x *S x K]``: position t sees codes < t only."""
        raise NotImplementedError

    def forward(self, codes: torch.Tensor, cond: Cond = None, mask: torch.Tensor | None = None) -> dict:
        """Training entry point (so DDP wrappers see a forward call): the same as :meth:`loss`."""
        return self.loss(codes, cond, mask)

    def code_log_probs(self, codes: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        """``log p(code_t | codes_<t, cond)`` for every position, ``Tensor[B x *S]`` (nats)."""
        logits = self.logits(codes, cond).float()  # (B, *S, K)
        return torch.log_softmax(logits, dim=-1).gather(-1, codes.unsqueeze(-1)).squeeze(-1)  # (B, *S)

    def loss(self, codes: torch.Tensor, cond: Cond = None, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"loss": mean NLL in nats per (unmasked) code, "bits_per_code": same in bits}``.

        ``mask : Bool[B x *S]`` marks real codes (padding excluded); None counts every position.
        """
        logp = self.code_log_probs(codes, cond)
        weight = torch.ones_like(logp) if mask is None else mask.to(logp.dtype)
        loss = -(logp * weight).sum() / weight.sum().clamp_min(1.0)
        return {"loss": loss, "bits_per_code": loss.detach() / math.log(2.0)}

    def log_prob(self, codes: torch.Tensor, cond: Cond = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Total log-likelihood of each sequence in nats, ``Tensor[B]`` (over unmasked positions)."""
        logp = self.code_log_probs(codes, cond)
        if mask is not None:
            logp = logp * mask.to(logp.dtype)
        return logp.flatten(1).sum(1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        length: int | tuple[int, ...],
        cond: Cond = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling of ``n`` sequences (``LongTensor[n x length]`` or ``[n x H x W]``)."""
        raise NotImplementedError
