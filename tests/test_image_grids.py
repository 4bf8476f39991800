"""Image grids: exact PNG pixel sizes, and what each grid's rows and columns hold (via a linear decoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from audiolvm.eval.image_grids import (
    analogy_images,
    grid_array,
    interpolation_images,
    sample_images,
    save_grid,
    traversal_images,
)

torch.set_num_threads(1)
D, H, W = 4, 5, 6


class Linear:
    """decode(z) = 0.5 + z @ A, reshaped to [N x 1 x H x W]; small weights keep |z| <= 3 inside [0, 1]."""

    def __init__(self, channels: int = 1) -> None:
        gen = torch.Generator().manual_seed(0)
        self.c = channels
        self.a = torch.randn(D, channels * H * W, generator=gen) * 0.02  # (D, C*H*W)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return (0.5 + z @ self.a).reshape(len(z), self.c, H, W)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # least-squares inverse, exact on the decoder's range
        return torch.linalg.lstsq(self.a.T, (x.reshape(len(x), -1) - 0.5).T).solution.T


@pytest.mark.parametrize(("rows", "cols", "channels", "pad", "upscale"), [(2, 3, 1, 1, 1), (3, 2, 3, 2, 4)])
def test_png_has_the_expected_pixel_size(tmp_path: Path, rows: int, cols: int, channels: int, pad: int,
                                         upscale: int) -> None:
    grid = sample_images(Linear(channels), D, rows=rows, cols=cols, seed=1)
    assert grid.shape == (rows, cols, channels, H, W)
    png = save_grid(grid, tmp_path / "sub" / "samples.png", pad=pad, upscale=upscale)
    img = imread(png)
    assert img.shape[:2] == ((rows * (H + pad) + pad) * upscale, (cols * (W + pad) + pad) * upscale)
    assert not list(png.parent.glob(".*.tmp"))  # atomic write leaves no temporary file
    if channels == 1:  # grey: R = G = B, and the first image's pixels come back (8-bit rounding)
        np.testing.assert_allclose(img[pad * upscale, pad * upscale, 0], grid[0, 0, 0, 0, 0].item(), atol=1 / 255)
        assert np.array_equal(img[..., 0], img[..., 1])


def test_samples_are_seeded() -> None:
    dec = Linear()
    assert torch.equal(sample_images(dec, D, 2, 2, seed=5), sample_images(dec, D, 2, 2, seed=5))
    assert not torch.equal(sample_images(dec, D, 2, 2, seed=5), sample_images(dec, D, 2, 2, seed=6))


def test_traversal_columns_differ_only_along_the_traversed_latent() -> None:
    dec = Linear()
    base = torch.tensor([0.3, -1.0, 2.0, 0.5])
    grid = traversal_images(dec, base, dims=[0, 2, 3], limit=2.0, steps=5)
    assert grid.shape == (3, 5, 1, H, W)
    values = torch.linspace(-2, 2, 5)
    for row, d in enumerate([0, 2, 3]):
        for col in range(5):
            expected = dec.a[d] * (values[col] - values[0])  # decode is linear: only latent d moved
            diff = (grid[row, col] - grid[row, 0]).reshape(-1)
            torch.testing.assert_close(diff, expected, atol=1e-6, rtol=0)
    # the middle column (value 0) is the base with latent d set to 0
    z = base.clone()
    z[2] = 0.0
    torch.testing.assert_close(grid[1, 2], dec(z[None])[0])
    relative = traversal_images(dec, base, dims=[1], limit=2.0, steps=5, relative=True)
    torch.testing.assert_close(relative[0, 2], dec(base[None])[0])  # offset 0 is the base itself


@pytest.mark.parametrize("spherical", [False, True])
def test_interpolations_run_from_one_input_to_the_other(spherical: bool) -> None:
    dec = Linear()
    gen = torch.Generator().manual_seed(2)
    za, zb = torch.randn(3, D, generator=gen), torch.randn(3, D, generator=gen)
    xa, xb = dec(za), dec(zb)
    grid = interpolation_images(dec, dec.encode, xa, xb, steps=6, spherical=spherical)
    assert grid.shape == (3, 8, 1, H, W)
    torch.testing.assert_close(grid[:, 0], xa)
    torch.testing.assert_close(grid[:, 1], xa, atol=1e-4, rtol=0)  # t = 0 decodes the first input
    torch.testing.assert_close(grid[:, 6], xb, atol=1e-4, rtol=0)  # t = 1 decodes the second
    if not spherical:  # the linear path's midpoint-ish column is the average of its neighbours
        torch.testing.assert_close(grid[:, 3], (grid[:, 2] + grid[:, 4]) / 2, atol=1e-5, rtol=0)


def test_analogies_fix_z_per_row_and_vary_the_class_per_column() -> None:
    table = torch.randn(10, H * W, generator=torch.Generator().manual_seed(3)) * 0.1

    def decode(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (0.5 + z[:, :1, None] * 0.01 + table[y][:, None]).reshape(len(z), 1, H, W)

    z = torch.tensor([[1.0, 0.0], [-2.0, 5.0]])
    originals = torch.zeros(2, 1, H, W)
    grid = analogy_images(decode, z, [7, 1, 4], originals=originals)
    assert grid.shape == (2, 4, 1, H, W) and torch.equal(grid[:, 0], originals)
    for r in range(2):
        for k, y in enumerate([7, 1, 4]):
            torch.testing.assert_close(grid[r, k + 1], decode(z[r : r + 1], torch.tensor([y]))[0])
    # same class, different rows differ only by the style offset of z
    torch.testing.assert_close(grid[0, 1] - grid[1, 1], torch.full((1, H, W), 0.03))


def test_grid_array_rejects_bad_shapes_and_clips() -> None:
    with pytest.raises(ValueError, match="C = 1 \\(grey\\) or 3"):
        grid_array(torch.zeros(1, 1, 2, 4, 4))
    arr = grid_array(torch.full((1, 1, 1, 2, 2), 7.0), pad=0)
    assert arr.shape == (2, 2, 1) and arr.max() == 1.0
