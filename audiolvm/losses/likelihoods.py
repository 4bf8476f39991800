"""Observation models ``p(x|z)`` for images: per-item log-likelihoods summed over every data dim.

Every likelihood reads the decoder's output ``params : Tensor[N x P x *S]`` (``P = param_channels``)
for data ``x : Tensor[N x C x *S]`` and gives

* ``log_prob(x, params) -> Tensor[N]``: ``log p(x|z)`` in nats, summed over channels and pixels;
* ``sample(params, generator) -> Tensor[N x C x *S]`` and ``mean(params)``, for image grids.

=================  ===========  ==========================================================
name               data         parameters per channel
=================  ===========  ==========================================================
``bernoulli``      [0, 1]       1 logit (non-binary targets give the usual BCE)
``gaussian``       any          mean (+ log-std from the decoder, or a learned per-pixel one)
``logistic``       [low, high]  mean, log-scale (x M mixture components + M mixture logits)
``categorical``    [low, high]  ``levels`` logits (``[N x L x C x *S]`` or ``[N x L*C x *S]``)
=================  ===========  ==========================================================

Discrete likelihoods (``logistic``, ``categorical``) assign probability mass to ``levels`` equally
spaced values in ``[low, high]``; their NLL in bits per dimension is directly comparable with
published results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError

#: log-scales (Gaussian log-std, logistic log-scale) are clamped below at this value
MIN_LOG_SCALE = -7.0
_LOG_2PI = math.log(2.0 * math.pi)


def _uniform(shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0, 1) noise of ``shape`` on ``like``'s device/dtype, drawn from ``generator`` (on its own device)."""
    device = like.device if generator is None else generator.device
    return torch.rand(tuple(shape), generator=generator, device=device).to(like)


def _normal(shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = like.device if generator is None else generator.device
    return torch.randn(tuple(shape), generator=generator, device=device).to(like)


def _full(t: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors promoted to float32 (float32 and float64 kept): softmaxes and CDFs need the range."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Likelihood(nn.Module):
    """Base class: ``param_channels`` decoder channels per item describe ``p(x|z)`` over ``channels`` channels."""

    channels: int
    param_channels: int

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - interface

    def mean(self, params: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, x: torch.Tensor, params: torch.Tensor) -> None:
        """Raise unless ``params : [N x param_channels x *S]`` fits ``x : [N x channels x *S]``."""
        expected = (x.shape[0], self.param_channels, *x.shape[2:])
        if x.dim() < 2 or x.shape[1] != self.channels or tuple(params.shape) != expected:
            raise UsageError(
                f"{type(self).__name__}: data {tuple(x.shape)} (expected {self.channels} channels) needs "
                f"parameters of shape {expected}, got {tuple(params.shape)}; make the decoder output "
                f"{self.param_channels} channels"
            )


class BernoulliLikelihood(Likelihood):
    """``x ~ Bernoulli(sigmoid(logits))`` per element; ``params`` are the logits ``[N x C x *S]``."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.channels = self.param_channels = channels

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        self.check(x, params)
        params = _full(params)
        nll = F.binary_cross_entropy_with_logits(params, x.to(params.dtype), reduction="none")  # (N, C, *S)
        return -nll.flatten(1).sum(dim=1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return (_uniform(params.shape, params, generator) < torch.sigmoid(params)).to(params.dtype)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)


class GaussianLikelihood(Likelihood):
    """Diagonal Gaussian ``N(mean, std^2)`` per element.

    Args:
        channels: data channels C.
        scale: ``"fixed"`` (``std`` everywhere; params are the means ``[N x C x *S]``), ``"decoder"``
            (params are ``[mean | log_std]``, ``[N x 2C x *S]``) or ``"pixel"`` (one learned log-std per
            element of ``shape``, initialised at ``log(std)``; params are the means).
        std: the fixed standard deviation, or the initial one for ``"pixel"``.
        shape: ``(C, *S)`` of one item, needed for ``"pixel"``.
    """

    SCALES = ("fixed", "decoder", "pixel")
    fixed_log_std: torch.Tensor  # buffer [], registered in __init__

    def __init__(self, channels: int = 1, scale: str = "fixed", std: float = 1.0,
                 shape: Sequence[int] | None = None) -> None:
        super().__init__()
        if scale not in self.SCALES:
            raise UsageError(f"GaussianLikelihood: scale must be one of {self.SCALES}, got {scale!r}")
        if std <= 0:
            raise UsageError(f"GaussianLikelihood: std must be > 0, got {std}")
        if scale == "pixel" and (shape is None or shape[0] != channels):
            raise UsageError(f"GaussianLikelihood(scale='pixel') needs shape=(C, *S) of one item with "
                             f"C={channels}, got {shape}")
        self.channels, self.scale = channels, scale
        self.param_channels = 2 * channels if scale == "decoder" else channels
        self.register_buffer("fixed_log_std", torch.tensor(math.log(std)))
        self.log_std: nn.Parameter | None = None
        if scale == "pixel":
            assert shape is not None  # checked above
            self.log_std = nn.Parameter(torch.full(tuple(shape), math.log(std)))

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``params`` -> ``(mean, log_std)``, broadcastable to ``[N x C x *S]``."""
        if self.scale == "decoder":
            mean, log_std = params.chunk(2, dim=1)  # (N, C, *S) each
        elif self.scale == "pixel":
            assert self.log_std is not None  # set in __init__ for scale="pixel"
            mean, log_std = params, self.log_std.unsqueeze(0)  # (1, C, *S)
        else:
            mean, log_std = params, self.fixed_log_std.expand_as(params)
        return mean, log_std.clamp(min=MIN_LOG_SCALE)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        self.check(x, params)
        mean, log_std = self.split(_full(params))
        log_density = -0.5 * ((x - mean) * torch.exp(-log_std)).square() - log_std - 0.5 * _LOG_2PI
        return log_density.flatten(1).sum(dim=1)  # (N,)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean, log_std = self.split(params)
        return mean + log_std.exp() * _normal(mean.shape, mean, generator)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]


class _Quantized(Likelihood):
    """Shared value <-> level arithmetic for likelihoods over ``levels`` values in ``[low, high]``."""

    def _init_levels(self, levels: int, low: float, high: float) -> None:
        if levels < 2 or not high > low:
            raise UsageError(f"{type(self).__name__}: need levels >= 2 and high > low, got levels={levels}, "
                             f"range [{low}, {high}]")
        self.levels, self.low, self.high = levels, float(low), float(high)

    def to_level(self, x: torch.Tensor) -> torch.Tensor:
        """Values in ``[low, high]`` -> nearest level index ``LongTensor`` in ``[0, levels)``."""
        unit = (x - self.low) / (self.high - self.low)
        return (unit * (self.levels - 1)).round().clamp(0, self.levels - 1).long()

    def from_level(self, level: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.low + level.to(dtype) * (self.high - self.low) / (self.levels - 1)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """``[low, high]`` -> ``[-1, 1]`` (the range the logistic parameters live in)."""
        return 2.0 * (x - self.low) / (self.high - self.low) - 1.0

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (u.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)


class CategoricalLikelihood(_Quantized):
    """Softmax over ``levels`` values per element; params ``[N x L x C x *S]`` or flat ``[N x L*C x *S]``
    (level-major: channel ``l * C + c`` is the logit of level l for data channel c)."""

    def __init__(self, channels: int = 1, levels: int = 256, low: float = 0.0, high: float = 1.0) -> None:
        super().__init__()
        self._init_levels(levels, low, high)
        self.channels, self.param_channels = channels, levels * channels

    def logits(self, params: torch.Tensor) -> torch.Tensor:
        """``params`` -> ``Tensor[N x L x C x *S]``."""
        if params.shape[1] == self.levels and params.dim() >= 3 and params.shape[2] == self.channels:
            return params
        if params.shape[1] != self.param_channels:
            raise UsageError(f"CategoricalLikelihood: params must be [N x {self.levels} x {self.channels} x *S] or "
                             f"[N x {self.param_channels} x *S], got {tuple(params.shape)}")
        return params.view(params.shape[0], self.levels, self.channels, *params.shape[2:])  # (N, L, C, *S)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        logits = self.logits(params)
        if tuple(logits.shape[2:]) != tuple(x.shape[1:]) or logits.shape[0] != x.shape[0]:
            raise UsageError(f"CategoricalLikelihood: logits {tuple(logits.shape)} do not fit data {tuple(x.shape)}")
        log_p = torch.log_softmax(_full(logits), dim=1)  # (N, L, C, *S)
        picked = log_p.gather(1, self.to_level(x).unsqueeze(1)).squeeze(1)  # (N, C, *S)
        return picked.flatten(1).sum(dim=1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logits = _full(self.logits(params))
        gumbel = -torch.log(-torch.log(_uniform(logits.shape, logits, generator).clamp(1e-10, 1.0)))
        return self.from_level((logits + gumbel).argmax(dim=1), params.dtype)  # (N, C, *S)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(_full(self.logits(params)), dim=1)  # (N, L, C, *S)
        values = self.from_level(torch.arange(self.levels, device=params.device))  # (L,)
        return (probs * values.view(-1, *([1] * (probs.dim() - 2)))).sum(dim=1).to(params.dtype)


def log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-d))`` for ``d > 0``, accurate for small and large ``d`` (Maechler 2012)."""
    cut = math.log(2.0)
    small = torch.log(-torch.expm1(-d.clamp(max=cut)))  # each branch sees only its own range, so the
    large = torch.log1p(-torch.exp(-d.clamp(min=cut)))  # unused one never produces inf (or NaN gradients)
    return torch.where(d < cut, small, large)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  levels: int) -> torch.Tensor:
    """Element-wise ``log P(x)`` of a logistic discretized to ``levels`` bins on ``[-1, 1]`` (PixelCNN++).

    ``x`` must lie on the level grid. The edge bins take the tails (``(-inf, -1 + h]``, ``[1 - h, inf)``).
    For interior bins ``log(sigmoid(a) - sigmoid(b)) = logsigmoid(a) - softplus(b) + log1mexp(a - b)``
    is exact and stable for any scale and distance from the mean (no PDF fallback needed).
    """
    half = 1.0 / (levels - 1)
    inv_scale = torch.exp(-log_scale)
    a = (x - mean + half) * inv_scale  # upper edge, standardised
    b = (x - mean - half) * inv_scale  # lower edge
    interior = F.logsigmoid(a) - F.softplus(b) + log1mexp(a - b)
    left_edge = F.logsigmoid(a)  # log CDF(upper)
    right_edge = -F.softplus(b)  # log (1 - CDF(lower))
    eps = 0.5 * half
    return torch.where(x < -1.0 + eps, left_edge, torch.where(x > 1.0 - eps, right_edge, interior))


class DiscretizedLogisticLikelihood(_Quantized):
    """Mixture of ``mixtures`` discretized logistics per pixel (PixelCNN++, without the channel coupling).

    Data in ``[low, high]`` with ``levels`` values is mapped to ``[-1, 1]``. Params: for ``mixtures = 1``,
    ``[means | log_scales]`` ``[N x 2C x *S]``; otherwise ``[logits (M) | means (M*C) | log_scales (M*C)]``,
    ``[N x M(1 + 2C) x *S]``, one mixture component shared by the channels of a pixel.
    """

    def __init__(self, channels: int = 1, levels: int = 256, low: float = -1.0, high: float = 1.0,
                 mixtures: int = 1) -> None:
        super().__init__()
        self._init_levels(levels, low, high)
        if mixtures < 1:
            raise UsageError(f"DiscretizedLogisticLikelihood: mixtures must be >= 1, got {mixtures}")
        self.channels, self.mixtures = channels, mixtures
        self.param_channels = 2 * channels if mixtures == 1 else mixtures * (1 + 2 * channels)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``params`` -> (log mixture weights ``[N x M x *S]``, means and log-scales ``[N x M x C x *S]``)."""
        n, m, c, spatial = params.shape[0], self.mixtures, self.channels, params.shape[2:]
        if m == 1:
            means, log_scales = params.chunk(2, dim=1)  # (N, C, *S) each
            log_w = params.new_zeros(n, 1, *spatial)
        else:
            log_w, means, log_scales = params.split([m, m * c, m * c], dim=1)
            log_w = torch.log_softmax(log_w, dim=1)  # (N, M, *S)
        means = means.reshape(n, m, c, *spatial)  # (N, M, C, *S)
        log_scales = log_scales.reshape(n, m, c, *spatial).clamp(min=MIN_LOG_SCALE)
        return log_w, means, log_scales

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        self.check(x, params)
        log_w, means, log_scales = self.split(_full(params))
        grid = self.to_unit(self.from_level(self.to_level(x))).unsqueeze(1)  # (N, 1, C, *S) on the level grid
        per_channel = discretized_logistic_log_prob(grid, means, log_scales, self.levels)  # (N, M, C, *S)
        per_pixel = torch.logsumexp(log_w + per_channel.sum(dim=2), dim=1)  # (N, *S)
        return per_pixel.flatten(1).sum(dim=1)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        log_w, means, log_scales = self.split(_full(params))
        gumbel = -torch.log(-torch.log(_uniform(log_w.shape, log_w, generator).clamp(1e-10, 1.0)))
        pick = (log_w + gumbel).argmax(dim=1, keepdim=True).unsqueeze(2)  # (N, 1, 1, *S)
        pick = pick.expand(-1, 1, self.channels, *pick.shape[3:])  # (N, 1, C, *S)
        mean, log_scale = means.gather(1, pick).squeeze(1), log_scales.gather(1, pick).squeeze(1)  # (N, C, *S)
        u = _uniform(mean.shape, mean, generator).clamp(1e-5, 1.0 - 1e-5)
        unit = mean + log_scale.exp() * (torch.log(u) - torch.log1p(-u))
        return self.from_level(self.to_level(self.from_unit(unit)), params.dtype)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mixture mean of the continuous logistics, clipped to the data range (for image grids)."""
        log_w, means, _ = self.split(_full(params))
        return self.from_unit((log_w.exp().unsqueeze(2) * means).sum(dim=1)).to(params.dtype)


LIKELIHOODS: dict[str, type[Likelihood]] = {
    "bernoulli": BernoulliLikelihood,
    "gaussian": GaussianLikelihood,
    "logistic": DiscretizedLogisticLikelihood,
    "categorical": CategoricalLikelihood,
}


def make_likelihood(name: str, **kwargs: object) -> Likelihood:
    """Build a likelihood by registry name (``bernoulli``, ``gaussian``, ``logistic``, ``categorical``)."""
    if name not in LIKELIHOODS:
        raise UsageError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[name](**kwargs)
