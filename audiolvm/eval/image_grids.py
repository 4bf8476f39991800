"""Model-agnostic image grids: samples, latent traversals, interpolations and class analogies as PNGs.

Models enter only as callables: ``decode(z: Tensor[N x D]) -> Tensor[N x C x H x W]`` (or ``[N x H x W]``),
``encode(x: Tensor[N x C x H x W]) -> Tensor[N x D]`` (e.g. the posterior mean) and, for analogies,
``decode(z, y: LongTensor[N]) -> images``. Decoded images should lie in [0, 1] (apply the sigmoid or take
the Bernoulli mean first); :func:`save_grid` clips to [0, 1].

Each ``*_images`` function returns a grid tensor ``[rows x cols x C x H x W]`` (calls run under
``torch.no_grad``) and :func:`save_grid` writes one: grey for C = 1, RGB for C = 3, one image pixel per
PNG pixel (times ``upscale``) with ``pad`` separator pixels around every image, so a grid of R x K images
of H x W is exactly ``(R * (H + pad) + pad) * upscale`` pixels high and ``(K * (W + pad) + pad) * upscale``
wide. The PNG is written with matplotlib (no figure, no axes) to a temporary file and renamed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_bytes

Decode = Callable[[torch.Tensor], torch.Tensor]
Encode = Callable[[torch.Tensor], torch.Tensor]
ConditionalDecode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _images(x: torch.Tensor) -> torch.Tensor:
    """Decoded batch as ``[N x C x H x W]`` (a missing channel axis is added)."""
    x = x.detach()
    return x[:, None] if x.dim() == 3 else x


def grid_array(grid: torch.Tensor, pad: int = 1, pad_value: float = 0.5, upscale: int = 1) -> np.ndarray:
    """``grid[R x K x C x H x W]`` -> a float array ``[H' x W' x C]`` in [0, 1] (sizes in the module docs)."""
    if grid.dim() != 5 or grid.shape[2] not in (1, 3):
        raise UsageError(f"grid_array: grid has shape {tuple(grid.shape)}; expected [rows x cols x C x H x W] "
                         "with C = 1 (grey) or 3 (RGB)")
    if pad < 0 or upscale < 1:
        raise UsageError(f"grid_array: pad={pad} must be >= 0 and upscale={upscale} >= 1")
    rows, cols, c, h, w = grid.shape
    x = grid.detach().float().clamp(0, 1).cpu().numpy().transpose(0, 1, 3, 4, 2)  # (R, K, H, W, C)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, dtype=np.float32)
    for r in range(rows):
        for k in range(cols):
            top, left = pad + r * (h + pad), pad + k * (w + pad)
            out[top : top + h, left : left + w] = x[r, k]
    return out.repeat(upscale, axis=0).repeat(upscale, axis=1)


def save_grid(grid: torch.Tensor, path: str | os.PathLike[str], pad: int = 1, pad_value: float = 0.5,
              upscale: int = 1) -> Path:
    """Write ``grid[R x K x C x H x W]`` (or ``[N x C x H x W]`` as one row) as a PNG; returns the path."""
    from matplotlib.image import imsave

    if grid.dim() == 4:
        grid = grid[None]  # (1, N, C, H, W)
    arr = grid_array(grid, pad, pad_value, upscale)  # (H', W', C)
    buf = io.BytesIO()
    if arr.shape[2] == 1:
        imsave(buf, arr[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, format="png")
    else:
        imsave(buf, arr, format="png")
    return atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def sample_images(decode: Decode, latent_dim: int, rows: int = 8, cols: int = 8, seed: int = 0,
                  std: float = 1.0) -> torch.Tensor:
    """Decodes of ``z ~ N(0, std^2 I)`` drawn from a generator seeded with ``seed``: ``[R x K x C x H x W]``."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(rows * cols, latent_dim, generator=gen) * std  # (R*K, D)
    x = _images(decode(z))
    return x.reshape(rows, cols, *x.shape[1:])  # (R, K, C, H, W)


@torch.no_grad()
def traversal_images(decode: Decode, z: torch.Tensor, dims: Sequence[int] | None = None, limit: float = 3.0,
                     steps: int = 9, relative: bool = False) -> torch.Tensor:
    """Row j varies latent ``dims[j]`` over ``linspace(-limit, limit, steps)`` (added to ``z[dim]`` when
    ``relative``, else set), every other latent held at the base ``z[D]``: ``[len(dims) x steps x C x H x W]``."""
    base = z.detach().reshape(-1)  # (D,)
    dims = list(range(len(base))) if dims is None else list(dims)
    values = torch.linspace(-limit, limit, steps, dtype=base.dtype)  # (S,)
    codes = base.repeat(len(dims), steps, 1)  # (J, S, D)
    for j, d in enumerate(dims):
        codes[j, :, d] = values + (base[d] if relative else 0.0)
    x = _images(decode(codes.reshape(-1, len(base))))  # (J*S, C, H, W)
    return x.reshape(len(dims), steps, *x.shape[1:])


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows ``a, b[P x D]`` at ``t[S]``: ``[P x S x D]`` (linear when parallel)."""
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)  # (P,)
    omega = torch.arccos(cos.clamp(-1, 1))[:, None, None]  # (P, 1, 1)
    t = t[None, :, None]  # (1, S, 1)
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin.clamp_min(1e-12)
    linear = (1 - t) * a[:, None] + t * b[:, None]
    return torch.where(sin.abs() < 1e-6, linear, spherical)


@torch.no_grad()
def interpolation_images(decode: Decode, encode: Encode, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8,
                         spherical: bool = False, with_ends: bool = True) -> torch.Tensor:
    """Row p decodes ``steps`` points from ``encode(x_a[p])`` to ``encode(x_b[p])`` (ends included), framed by
    the two inputs when ``with_ends``: ``[P x (steps + 2) x C x H x W]`` (or ``steps`` columns)."""
    za, zb = encode(x_a).detach(), encode(x_b).detach()  # (P, D)
    t = torch.linspace(0, 1, steps, dtype=za.dtype)
    codes = _slerp(za, zb, t) if spherical else (1 - t)[None, :, None] * za[:, None] + t[None, :, None] * zb[:, None]
    x = _images(decode(codes.reshape(-1, za.shape[-1])))  # (P*S, C, H, W)
    x = x.reshape(len(za), steps, *x.shape[1:])  # (P, S, C, H, W)
    if with_ends:
        x = torch.cat([_images(x_a)[:, None].to(x), x, _images(x_b)[:, None].to(x)], dim=1)
    return x


@torch.no_grad()
def analogy_images(decode: ConditionalDecode, z: torch.Tensor, classes: Sequence[int] | torch.Tensor,
                   originals: torch.Tensor | None = None) -> torch.Tensor:
    """Row r decodes the fixed ``z[r]`` with each class of ``classes`` (``decode(z, y)``), so a row keeps the
    style and a column the class; ``originals[R x C x H x W]``, when given, is prepended as column 0:
    ``[R x K x C x H x W]`` (K = len(classes), + 1 with originals)."""
    z = z.detach()  # (R, D)
    y = torch.as_tensor(classes, dtype=torch.long).reshape(-1)  # (K,)
    rows, k = len(z), len(y)
    codes = z[:, None].expand(rows, k, z.shape[-1]).reshape(rows * k, -1)  # (R*K, D)
    x = _images(decode(codes, y.repeat(rows)))  # (R*K, C, H, W)
    x = x.reshape(rows, k, *x.shape[1:])
    if originals is not None:
        x = torch.cat([_images(originals)[:, None].to(x), x], dim=1)
    return x
