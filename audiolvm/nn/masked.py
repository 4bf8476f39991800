"""Causal and masked convolutions for autoregressive models (WaveNet, gated PixelCNN).

Masks are made by padding and shifting, never by multiplying weights with a mask, so no weight is
ever wasted and the convolution stays an ordinary ``nn.Conv1d`` / ``nn.Conv2d``:

* mask ``"A"`` excludes the current position (the first layer, which sees the input codes);
* mask ``"B"`` includes it (later layers, whose features at a position already exclude its code).

The 2-D convolutions are the vertical and horizontal stacks of van den Oord et al. 2016 ("Conditional
Image Generation with PixelCNN Decoders"), which together have no blind spot: the vertical stack sees
every pixel in the rows above (up-left and up-right alike) and is shifted down one row before it
feeds the horizontal stack, which sees the pixels to the left in the current row.

Shapes are channels-first: ``Tensor[B x C x T]`` and ``Tensor[B x C x H x W]``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from audiolvm.core.errors import UsageError

Mask = Literal["A", "B"]


def _check_mask(mask: str) -> None:
    if mask not in ("A", "B"):
        raise UsageError(f"mask must be 'A' (exclude the current position) or 'B' (include it), got {mask!r}")


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """Move ``x : Tensor[... x T]`` one step along the last axis, zero-filling position 0."""
    return F.pad(x, (1, 0))[..., :-1]


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Move ``x : Tensor[B x C x H x W]`` one row down, zero-filling row 0."""
    return F.pad(x, (0, 0, 1, 0))[..., :-1, :]


def gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation ``tanh(a) * sigmoid(b)`` for ``x = [a; b]`` stacked on channels.

    ``x : Tensor[B x 2C x *S]`` -> ``Tensor[B x C x *S]``.
    """
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class CausalConv1d(nn.Module):
    """Dilated 1-D convolution whose output at t sees inputs ``<= t`` (mask B) or ``< t`` (mask A).

    Made by left padding (plus a one-step shift for mask A); length preserving.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 mask: Mask = "B") -> None:
        super().__init__()
        _check_mask(mask)
        if kernel_size < 1 or dilation < 1:
            raise UsageError(f"kernel_size and dilation must be >= 1, got {kernel_size} and {dilation}")
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.mask = mask
        self.pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : Tensor[B x C_in x T]`` -> ``Tensor[B x C_out x T]``."""
        if self.mask == "A":
            x = shift_right(x)
        return self.conv(F.pad(x, (self.pad, 0)))


def _check_odd(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise UsageError(f"2-D stack convolutions need an odd kernel_size >= 1, got {kernel_size}")


class VerticalStackConv2d(nn.Module):
    """``(k//2 + 1) x k`` convolution over the rows above and the current row.

    The output at ``(i, j)`` sees rows ``i - k//2 .. i`` and columns ``j - k//2 .. j + k//2``: it
    includes the current row, so it must go through :func:`shift_down` before it feeds a horizontal
    stack (then it sees only rows ``< i``, including the pixels up and to the right).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        _check_odd(kernel_size)
        self.radius = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (self.radius + 1, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : Tensor[B x C_in x H x W]`` -> ``Tensor[B x C_out x H x W]``."""
        return self.conv(F.pad(x, (self.radius, self.radius, self.radius, 0)))  # pad (left, right, top, bottom)


class HorizontalStackConv2d(nn.Module):
    """``1 x (k//2 + 1)`` convolution over the current row, to the left.

    The output at ``(i, j)`` sees columns ``j - k//2 .. j`` of row i (mask B) or, shifted one pixel,
    ``j - k//2 - 1 .. j - 1`` (mask A: the current pixel excluded).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask: Mask = "B") -> None:
        super().__init__()
        _check_odd(kernel_size)
        _check_mask(mask)
        self.radius = kernel_size // 2
        self.mask = mask
        self.conv = nn.Conv2d(in_channels, out_channels, (1, self.radius + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : Tensor[B x C_in x H x W]`` -> ``Tensor[B x C_out x H x W]``."""
        if self.mask == "A":
            x = shift_right(x)
        return self.conv(F.pad(x, (self.radius, 0)))


class LabelBias(nn.Module):
    """Class conditioning ``V h`` for a one-hot label h: one learned bias per label, ``[B] -> [B x C]``."""

    def __init__(self, num_labels: int, channels: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_labels, channels) if num_labels > 0 else None

    def forward(self, y: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        """Add the bias of ``label : LongTensor[B]`` to ``y : Tensor[B x C x *S]`` (none when unconditional)."""
        if self.embed is None:
            if label is not None:
                raise UsageError("a label was given to a layer built without labels (num_labels=0)")
            return y
        if label is None:
            raise UsageError("this layer is class-conditional (num_labels > 0) and needs a label")
        bias = self.embed(label)  # (B, C)
        return y + bias.view(*bias.shape, *([1] * (y.dim() - 2)))  # (B, C, 1, ...)


class GatedCausalBlock1d(nn.Module):
    """Gated residual block over time (WaveNet / 1-D PixelCNN), mask B.

    ``z = tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h)``; returns ``x + R z`` and the skip ``S z``,
    with R and S 1x1 convolutions and h the label. The ``last`` block of a stack has no R (only its
    skip is used) and returns x unchanged.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1, num_labels: int = 0,
                 last: bool = False) -> None:
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation, mask="B")
        self.label = LabelBias(num_labels, 2 * channels)
        self.res = None if last else nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x : Tensor[B x C x T]``, ``label : LongTensor[B]`` -> (residual out, skip), both ``[B x C x T]``."""
        z = gate(self.label(self.conv(x), label))  # (B, C, T)
        return (x if self.res is None else x + self.res(z)), self.skip(z)


class GatedStackBlock2d(nn.Module):
    """One gated PixelCNN layer: a vertical and a horizontal stack with no blind spot.

    The vertical pre-activation, shifted down a row, feeds the horizontal one through a 1x1 link.
    Both stacks are gated and label-conditioned; the horizontal stack has a residual connection
    (except under mask A, the first layer, whose input holds the current pixel) and a skip output.
    The ``last`` layer of a stack has no residual projection (only its skip is used) and returns its
    inputs unchanged in place of the stack outputs.

    With ``cond_channels > 0`` a spatial condition ``cond : Tensor[B x cond_channels x H x W]`` (which
    must not depend on the pixels being modelled, e.g. features of a VAE latent) is added to both
    pre-activations through 1x1 convolutions (the ``V * s(h)`` term of the conditional PixelCNN).
    """

    def __init__(self, channels: int, kernel_size: int, mask: Mask = "B", num_labels: int = 0,
                 last: bool = False, cond_channels: int = 0) -> None:
        super().__init__()
        self.cond_proj = nn.Conv2d(cond_channels, 4 * channels, 1) if cond_channels > 0 else None
        self.v_conv = VerticalStackConv2d(channels, 2 * channels, kernel_size)
        self.h_conv = HorizontalStackConv2d(channels, 2 * channels, kernel_size, mask)
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.v_label = LabelBias(num_labels, 2 * channels)
        self.h_label = LabelBias(num_labels, 2 * channels)
        self.res = None if last else nn.Conv2d(channels, channels, 1)
        self.skip = nn.Conv2d(channels, channels, 1)
        self.residual = mask == "B"

    def forward(self, v: torch.Tensor, h: torch.Tensor, label: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``v, h : Tensor[B x C x H x W]`` -> (vertical out, horizontal out, skip), each ``[B x C x H x W]``."""
        v_pre = self.v_label(self.v_conv(v), label)  # (B, 2C, H, W): rows <= i
        h_pre = self.h_label(self.h_conv(h) + self.link(shift_down(v_pre)), label)  # rows < i, or row i left of j
        if (cond is None) != (self.cond_proj is None):
            raise UsageError("GatedStackBlock2d: pass cond exactly when the block was built with cond_channels > 0")
        if self.cond_proj is not None:
            v_cond, h_cond = self.cond_proj(cond).chunk(2, dim=1)  # (B, 2C, H, W) each
            v_pre, h_pre = v_pre + v_cond, h_pre + h_cond
        z = gate(h_pre)  # (B, C, H, W)
        if self.res is None:
            return v, h, self.skip(z)
        h_out = self.res(z) + h if self.residual else self.res(z)
        return gate(v_pre), h_out, self.skip(z)
