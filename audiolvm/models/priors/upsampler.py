"""Upsampler prior (Jukebox): a causal transformer over a lower level's codes, conditioned on the
whole aligned sequence of the level above.

The upper codes ``cond["upper"] : LongTensor[B x M]`` are embedded, passed through a small
non-causal conv stack that upsamples them by ``upsample = hop_upper / hop_lower`` (residual stack,
transposed conv, residual stack, LayerNorm), cropped to the lower length N <= M * upsample, and added
to the token embeddings: the input that predicts lower code p carries upper features at position p.
Conditioning on the whole upper sequence (future included) is fine: the upper level is already
known when upsampling. Everything else (start token, labels, KV cache, windowed sampling) is
:class:`CausalTransformerPrior`'s.
"""

from __future__ import annotations

import torch
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.models.priors.base import Cond
from audiolvm.models.priors.transformer import CausalTransformerPrior
from audiolvm.nn.conv1d import ResidualStack, Upsample1d


class UpsamplerPrior(CausalTransformerPrior):
    """``p(lower codes | upper codes, label)``: ``cond["upper"]`` is required by ``logits``, ``loss`` and
    ``sample`` (in sampling the conditioning is computed once for the whole length and sliced per window).

    ``num_upper_codes`` is the upper level's codebook size, ``upsample`` the ratio of the two levels'
    hops, ``cond_depth`` the number of residual blocks before and after the upsampling conv.
    """

    def __init__(self, num_codes: int, num_upper_codes: int, upsample: int, context: int = 2048, dim: int = 256,
                 layers: int = 4, heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.0, num_labels: int = 0,
                 cond_depth: int = 2) -> None:
        super().__init__(num_codes, context, dim, layers, heads, mlp_ratio, dropout, num_labels)
        if upsample < 1:
            raise UsageError(f"UpsamplerPrior: upsample (hop_upper / hop_lower) must be >= 1, got {upsample}")
        self.num_upper_codes, self.upsample = num_upper_codes, upsample
        self.upper_emb = nn.Embedding(num_upper_codes, dim)
        nn.init.normal_(self.upper_emb.weight, std=0.02)
        self.upper_net = nn.Sequential(
            ResidualStack(dim, cond_depth), Upsample1d(dim, dim, upsample), ResidualStack(dim, cond_depth, reverse=True)
        )
        self.upper_ln = nn.LayerNorm(dim)

    def upper_features(self, cond: Cond, batch: int, length: int) -> torch.Tensor:
        """Upsampled upper-level features for the first ``length`` lower positions, ``Tensor[B x length x C]``."""
        upper = None if cond is None else cond.get("upper")
        if upper is None:
            raise UsageError(
                "cond['upper'] is required by UpsamplerPrior: pass the upper level's codes as "
                f"cond={{'upper': LongTensor[B x M]}} with M * upsample ({self.upsample}) >= the lower length"
            )
        if upper.dim() != 2 or upper.shape[0] != batch or upper.is_floating_point():
            raise UsageError(f"cond['upper'] must be a LongTensor[B x M] with B={batch}, got "
                             f"{upper.dtype} of shape {tuple(upper.shape)}")
        if upper.shape[1] * self.upsample < length:
            raise UsageError(
                f"cond['upper'] is too short: {upper.shape[1]} upper codes x upsample {self.upsample} < {length} "
                "lower codes; pass the whole aligned upper sequence (ceil(lower length / upsample) codes or more)"
            )
        x = self.upper_emb(upper.long()).transpose(1, 2)  # (B, C, M)
        x = self.upper_net(x)[..., :length]  # (B, C, length)
        return self.upper_ln(x.transpose(1, 2))  # (B, length, C)

    def cond_features(self, cond: Cond, batch: int, length: int) -> torch.Tensor:
        """Upper-level features plus the label embedding (when ``num_labels > 0``), ``Tensor[B x length x C]``."""
        feats = self.upper_features(cond, batch, length)
        label = super().cond_features(cond, batch, length)
        return feats if label is None else feats + label  # (B, length, C)
