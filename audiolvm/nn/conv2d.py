"""2-D convolutional building blocks for small images: residual blocks, exact-factor resampling,
and encoder/decoder stacks (VQ-VAE style) with an optional flat (vector) latent.

Shapes are channels-first, ``Tensor[B x C x H x W]``. A stack with ``factors=(2, 2)`` maps 28x28 to
7x7 and 32x32 to 8x8; ``(2,)`` maps 8x8 to 4x4; ``(2, 2, 2)`` maps 64x64 to 8x8. Sizes not divisible
by the total factor are refused (no silent cropping).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError
from audiolvm.nn.conditioning import check_condition, concat_condition


class ResidualBlock2d(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))``, size preserving (VQ-VAE residual block)."""

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.conv = nn.Conv2d(channels, hidden, kernel_size=3, padding=1)
        self.proj = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def _resampling_kernel(factor: int) -> tuple[int, int]:
    """(kernel, padding) giving exactly ``H // factor`` (down) or ``H * factor`` (up) for any factor."""
    if factor < 1:
        raise UsageError(f"resampling factor must be >= 1, got {factor}")
    return (2 * factor, factor // 2) if factor % 2 == 0 else (factor, 0)


class Downsample2d(nn.Module):
    """Strided conv mapping ``H x W`` to exactly ``H/f x W/f`` (kernel ``2f``, padding ``f/2`` for even f)."""

    def __init__(self, in_ch: int, out_ch: int, factor: int) -> None:
        super().__init__()
        kernel, pad = _resampling_kernel(factor)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=factor, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample2d(nn.Module):
    """Transposed conv mapping ``H x W`` to exactly ``fH x fW``."""

    def __init__(self, in_ch: int, out_ch: int, factor: int) -> None:
        super().__init__()
        kernel, pad = _resampling_kernel(factor)
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, kernel, stride=factor, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def reduced_size(size: Sequence[int], factors: Sequence[int], owner: str) -> tuple[int, int]:
    """``(H, W)`` divided by ``prod(factors)``; raises if either side is not divisible."""
    total = math.prod(factors)
    height, width = (int(s) for s in size)
    if height % total or width % total:
        raise UsageError(f"{owner}: image size {height}x{width} is not divisible by the total resampling factor "
                         f"{total} (factors {list(factors)}); choose factors whose product divides the size")
    return height // total, width // total


class ConvEncoder2d(nn.Module):
    """Image -> feature map (or vector): stem conv, one strided conv per factor, residual blocks, head.

    Args:
        in_channels, out_channels: image channels in; features out (``2D`` for a Gaussian bottleneck).
        width: hidden channels.
        factors: downsampling factors, one strided conv each.
        depth: residual blocks after the last downsampling.
        cond_dim: size of a class condition ``Tensor[B x K]``, broadcast as extra input channels.
        input_size: ``(H, W)`` of the images; if given, the output is flattened and projected to a
            vector ``Tensor[B x out_channels]``, otherwise it is a map ``Tensor[B x out_channels x H/f x W/f]``.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, factors: Sequence[int] = (2, 2),
                 depth: int = 2, cond_dim: int = 0, input_size: Sequence[int] | None = None) -> None:
        super().__init__()
        self.factors, self.cond_dim = tuple(factors), cond_dim
        self.input_size = None if input_size is None else tuple(int(s) for s in input_size)
        self.stem = nn.Conv2d(in_channels + cond_dim, width, kernel_size=3, padding=1)
        self.down = nn.ModuleList(Downsample2d(width, width, f) for f in self.factors)
        self.blocks = nn.Sequential(*[ResidualBlock2d(width) for _ in range(depth)])
        if self.input_size is None:
            self.head: nn.Module = nn.Conv2d(width, out_channels, kernel_size=1)
        else:
            h, w = reduced_size(self.input_size, self.factors, "ConvEncoder2d")
            self.head = nn.Linear(width * h * w, out_channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``x : Tensor[B x C x H x W]`` -> ``Tensor[B x out x H/f x W/f]`` or ``Tensor[B x out]``."""
        check_condition(cond, self.cond_dim, "ConvEncoder2d")
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            raise UsageError(f"ConvEncoder2d was built for {self.input_size} images (flat latent), got "
                             f"{tuple(x.shape[-2:])}; rebuild it with input_size={tuple(x.shape[-2:])}")
        reduced_size(x.shape[-2:], self.factors, "ConvEncoder2d")
        h = self.stem(concat_condition(x, cond))  # (B, width, H, W)
        for down in self.down:
            h = down(F.relu(h))  # (B, width, H/f_i, W/f_i)
        h = F.relu(self.blocks(h))
        return self.head(h if self.input_size is None else h.flatten(1))


class ConvDecoder2d(nn.Module):
    """Latent (map or vector) -> image-sized output: input layer, residual blocks, one transposed conv
    per factor, output conv.

    Args:
        in_channels: latent channels ``D`` (or vector size when ``output_size`` is given).
        out_channels: output channels (a likelihood's parameter channels).
        width, factors, depth, cond_dim: as in :class:`ConvEncoder2d` (factors in encoder order;
            upsampling applies them reversed).
        output_size: ``(H, W)``; if given the input is a vector ``Tensor[B x D]`` projected to a
            ``width x H/f x W/f`` map, otherwise a map ``Tensor[B x D x h x w]``.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, factors: Sequence[int] = (2, 2),
                 depth: int = 2, cond_dim: int = 0, output_size: Sequence[int] | None = None) -> None:
        super().__init__()
        self.factors, self.cond_dim, self.width = tuple(factors), cond_dim, width
        self.base: tuple[int, int] | None = None
        if output_size is None:
            self.inp: nn.Module = nn.Conv2d(in_channels + cond_dim, width, kernel_size=3, padding=1)
        else:
            self.base = reduced_size(output_size, self.factors, "ConvDecoder2d")
            self.inp = nn.Linear(in_channels + cond_dim, width * math.prod(self.base))
        self.blocks = nn.Sequential(*[ResidualBlock2d(width) for _ in range(depth)])
        self.up = nn.ModuleList(Upsample2d(width, width, f) for f in reversed(self.factors))
        self.out = nn.Conv2d(width, out_channels, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``z : Tensor[B x D x h x w]`` or ``Tensor[B x D]`` -> ``Tensor[B x out x H x W]``."""
        check_condition(cond, self.cond_dim, "ConvDecoder2d")
        if self.base is None:
            h = self.inp(concat_condition(z, cond))  # (B, width, h, w)
        else:
            h = self.inp(concat_condition(z.flatten(1), cond))  # (B, width * h * w)
            h = h.view(z.shape[0], self.width, *self.base)  # (B, width, h, w)
        h = self.blocks(h)
        for up in self.up:
            h = up(F.relu(h))  # (B, width, h*f_i, w*f_i)
        return self.out(F.relu(h))
