"""EnCodec's loss balancer (Défossez et al., 2022, section 3.4): each term's weight sets its share of the gradient
at the decoder output, whatever the term's scale.

For terms ``l_k`` of an output ``y`` with weights ``w_k``, the gradient that reaches ``y`` is
``G = sum_k total * (w_k / sum_j w_j) * g_k / ema_k``, where ``g_k = d l_k / d y`` and ``ema_k`` is an exponential
moving average (decay ``decay``) of ``g_k``'s norm, the per-item L2 norm averaged over the batch. So term ``k``'s
contribution has norm ``~ total * w_k / sum w`` (exactly, once the average has settled). ``balance`` returns a
scalar surrogate built on ``sum(y * G.detach())``: its gradient at ``y`` is ``G``, and backward carries ``G`` into the
network that made ``y``; its value is the plain weighted sum ``sum_k w_k l_k``, so logs and the checkpoint health
check read a loss, not the surrogate. Terms that do not depend on ``y`` (a VQ commitment term) are added to it
unbalanced.

A term whose gradient is exactly zero (switched off by a zero factor) is left out: its average stays and it takes
no share. The averages are buffers, so they are checkpointed with the module that holds the balancer (exact resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
from torch import nn

from audiolvm.core.errors import UsageError


class Balancer(nn.Module):
    """Gradient balancer over named terms of one or more outputs (``key`` tells the outputs apart: a level).

    Args:
        keys: the ``(output key, term)`` pairs whose gradient norms are averaged; one buffer each.
        total: the norm of the balanced gradient of one output (EnCodec: 1).
        decay: EMA decay of each term's gradient norm (EnCodec: 0.999); the average is bias-corrected, so early
            steps use the norms seen so far.
    """

    def __init__(self, keys: list[tuple[str, str]], total: float = 1.0, decay: float = 0.999, eps: float = 1e-12):
        super().__init__()
        if not 0.0 <= decay < 1.0 or total <= 0:
            raise UsageError(f"need 0 <= decay < 1 and total > 0, got {decay=}, {total=}")
        self.total, self.decay, self.eps = total, decay, eps
        self.index = {key: i for i, key in enumerate(keys)}
        self.norms: torch.Tensor
        self.weight_sum: torch.Tensor
        self.register_buffer("norms", torch.zeros(len(keys)))  # EMA numerator per key
        self.register_buffer("weight_sum", torch.zeros(len(keys)))  # EMA denominator (bias correction)

    def balance(self, output: torch.Tensor, terms: Mapping[str, torch.Tensor], weights: Mapping[str, float],
                key: str = "") -> torch.Tensor:
        """The surrogate loss whose gradient at ``output`` is the balanced sum of ``terms``' gradients (weights
        ``weights[name]``). Updates the norm averages when gradients are enabled; without (validation) it returns
        the plain weighted sum."""
        names = [n for n in terms if weights.get(n, 0.0) != 0.0]
        if not names:
            return output.new_zeros(())
        if not torch.is_grad_enabled() or not output.requires_grad:
            return cast(torch.Tensor, sum(weights[n] * terms[n] for n in names))  # names is not empty
        per_term = []
        for n in names:
            (g,) = torch.autograd.grad(terms[n], output, retain_graph=True, allow_unused=True)
            per_term.append(torch.zeros_like(output) if g is None else g)
        idx = torch.tensor([self.index[(key, n)] for n in names], device=output.device)
        norms = torch.stack([g.flatten(1).norm(dim=1).mean() for g in per_term]).detach().float()
        active = norms > 0  # a term switched off by a zero factor (adversarial terms before adv.start_step)
        with torch.no_grad():  # only active terms move their average
            self.norms[idx] = torch.where(active, self.decay * self.norms[idx] + (1 - self.decay) * norms,
                                          self.norms[idx])
            self.weight_sum[idx] = torch.where(active, self.decay * self.weight_sum[idx] + (1 - self.decay),
                                               self.weight_sum[idx])
        avg = self.norms[idx] / self.weight_sum[idx].clamp_min(self.eps)
        share = torch.tensor([weights[n] for n in names], device=output.device) * active
        scale = self.total * share / share.sum().clamp_min(self.eps) / (avg + self.eps)
        total = sum(s * g for s, g in zip(scale, per_term, strict=True))
        surrogate = (output * total.detach()).sum()
        plain = cast(torch.Tensor, sum(weights[n] * terms[n] for n in names))
        return plain.detach() + surrogate - surrogate.detach()  # the weighted sum's value, the balanced gradient
