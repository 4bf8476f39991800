"""A procedural dSprites-style data set: the dSprites factor grid, rendered on demand.

The original dSprites (Matthey et al. 2017) was rasterised in Love2D and cannot be regenerated pixel for
pixel; this is a *dSprites-style* generator on the same factor grid, not the original images:

=============  ====  ==========================================================================
factor         size  values
=============  ====  ==========================================================================
shape             3  square, ellipse, heart (also the ``label``)
scale             6  ``linspace(0.5, 1, 6)``; the sprite's half-size is ``HALF_SIZE * scale`` pixels
orientation      40  ``linspace(0, 2*pi, 40)`` radians, counter-clockwise as displayed; like the
                     original, the first and last values coincide
pos_x            32  ``linspace(0, 1, 32)``; left to right (image columns)
pos_y            32  ``linspace(0, 1, 32)``; top to bottom (image rows, as ``imshow`` shows them)
=============  ====  ==========================================================================

Images are 64x64 and binary (a pixel is on when its centre lies inside the shape). The original's constant
``color`` factor is left out. Indices enumerate the grid like the original, with pos_y fastest:
``index = (((shape * 6 + scale) * 40 + orientation) * 32 + pos_x) * 32 + pos_y`` (737,280 images).
Sprites are rendered per index (vectorised numpy, about 0.2 ms each, less in batches), never held as one
array; a data set may cache the images it has rendered (bit-packed, 512 bytes each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolvm.core.errors import UsageError

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
IMAGE_SIZE = 64
HALF_SIZE = 7.0  # pixels, at scale 1 (a square's half side)
MARGIN = 10.5  # pixels from the border to the centre at position 0 (no sprite is ever clipped)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))
_STRIDES = np.array([int(np.prod(FACTOR_SIZES[k + 1 :])) for k in range(len(FACTOR_SIZES))])  # (F,)
_PIXEL = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5  # pixel centres
_CHUNK = 64  # images rendered per vectorised step


def factors_to_index(factors: np.ndarray | Sequence[int]) -> np.ndarray:
    """Grid index of factor-class tuples: ``factors[..., 5]`` (ints) -> ``index[...]``."""
    f = np.asarray(factors, dtype=np.int64)
    if f.shape[-1:] != (len(FACTOR_SIZES),):
        raise UsageError(f"factors_to_index: factors have shape {f.shape}; the last axis must hold the "
                         f"{len(FACTOR_SIZES)} factors {FACTOR_NAMES}")
    if (f < 0).any() or (f >= np.array(FACTOR_SIZES)).any():
        sizes = dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))
        raise UsageError(f"factors_to_index: factor classes out of range; the sizes are {sizes}")
    return f @ _STRIDES


def index_to_factors(index: np.ndarray | int) -> np.ndarray:
    """Factor classes of grid indices: ``index[...]`` -> ``factors[..., 5]`` (pos_y varies fastest)."""
    i = np.asarray(index, dtype=np.int64)
    if (i < 0).any() or (i >= NUM_IMAGES).any():
        raise IndexError(f"index_to_factors: indices must lie in [0, {NUM_IMAGES})")
    return (i[..., None] // _STRIDES) % np.array(FACTOR_SIZES)


def _inside(shape: int, u: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Membership in sprite coordinates (``u`` right, ``q`` up, in half-sizes): (B, H, W) -> bool (B, H, W)."""
    if shape == 0:  # square
        return np.maximum(np.abs(u), np.abs(q)) <= 1.0
    if shape == 1:  # ellipse, 2:1
        return (u / 1.2) ** 2 + (q / 0.6) ** 2 <= 1.0
    p, r = u / 0.8, q / 0.8 + 0.29  # the heart curve, scaled and shifted so its centroid is at the origin
    p2 = p * p
    return (p2 + r * r - 1.0) ** 3 <= p2 * r**3


def _render_shape(shape: int, f: np.ndarray) -> np.ndarray:
    """Sprites of one shape: factor classes ``f[B x 5]`` -> bool ``[B x 64 x 64]``."""
    half = (HALF_SIZE * SCALES[f[:, 1]])[:, None, None]  # (B, 1, 1)
    theta = ORIENTATIONS[f[:, 2]][:, None, None]
    travel = IMAGE_SIZE - 2 * MARGIN
    cx = (MARGIN + travel * POSITIONS[f[:, 3]])[:, None, None]
    cy = (MARGIN + travel * POSITIONS[f[:, 4]])[:, None, None]
    dx = (_PIXEL[None, None, :] - cx) / half  # (B, 1, W)
    up = (cy - _PIXEL[None, :, None]) / half  # (B, H, 1); rows grow downwards
    c, s = np.cos(theta), np.sin(theta)
    u, q = c * dx + s * up, c * up - s * dx  # (B, H, W): the pixel rotated by -theta into the sprite frame
    return _inside(shape, u, q)


def render(factors: np.ndarray | Sequence[int]) -> np.ndarray:
    """Binary images of factor-class tuples: ``factors[B x 5]`` (or ``[5]``) -> bool ``[B x 64 x 64]``."""
    f = np.atleast_2d(np.asarray(factors, dtype=np.int64))
    factors_to_index(f)  # validates the ranges
    out = np.empty((len(f), IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for shape in np.unique(f[:, 0]):
        rows = np.flatnonzero(f[:, 0] == shape)
        for start in range(0, len(rows), _CHUNK):  # chunks keep the float temporaries small
            chunk = rows[start : start + _CHUNK]
            out[chunk] = _render_shape(int(shape), f[chunk])
    return out


def subsample(num: int, seed: int = 0, fixed: Mapping[str, int] | None = None) -> np.ndarray:
    """``num`` distinct grid indices drawn uniformly (sorted), optionally with some factors held fixed.

    ``fixed`` maps factor names to classes, e.g. ``{"shape": 2, "scale": 5}`` for large hearts only.
    """
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(FACTOR_NAMES)
    if unknown:
        raise UsageError(f"subsample: unknown factors {sorted(unknown)}; the factors are {FACTOR_NAMES}")
    free = [k for k, name in enumerate(FACTOR_NAMES) if name not in fixed]
    sizes = np.array([FACTOR_SIZES[k] for k in free], dtype=np.int64)
    total = int(np.prod(sizes))
    if not 0 < num <= total:
        raise UsageError(f"subsample: num={num} but only {total} images match fixed={fixed}; pass 1..{total}")
    flat = np.random.default_rng(seed).choice(total, size=num, replace=False)  # (num,)
    strides = np.array([int(np.prod(sizes[j + 1 :])) for j in range(len(sizes))], dtype=np.int64)
    factors = np.zeros((num, len(FACTOR_SIZES)), dtype=np.int64)
    factors[:, free] = (flat[:, None] // strides) % sizes
    for name, value in fixed.items():
        factors[:, FACTOR_NAMES.index(name)] = value
    return np.sort(factors_to_index(factors))


class DSpritesStyle(Dataset):
    """The procedural dSprites-style data set (see the module docstring), or a subset of its indices.

    ``ds[i]`` is ``{"image": FloatTensor[1 x 64 x 64] in {0, 1}, "label": shape class, "index": i,
    "factors": LongTensor[5]}``; ``i`` counts within the subset, ``factors`` locate the image on the grid.
    It is also a ground-truth factor source for :mod:`audiolvm.eval.disentangle`
    (``factor_sizes``, ``sample_factors``, ``images_of``), which always samples the full grid.

    Args:
        indices: grid indices to expose (e.g. from :func:`subsample`); default all 737,280.
        cache: keep rendered images (bit-packed) for later epochs; each DataLoader worker has its own.
    """

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def __init__(self, indices: Sequence[int] | np.ndarray | None = None, cache: bool = False) -> None:
        if indices is None:
            self.indices = np.arange(NUM_IMAGES, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            index_to_factors(self.indices)  # validates the range
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    @classmethod
    def subset(cls, num: int, seed: int = 0, fixed: Mapping[str, int] | None = None,
               cache: bool = False) -> DSpritesStyle:
        """A random subset of ``num`` images, for quick experiments (see :func:`subsample`)."""
        return cls(subsample(num, seed, fixed), cache=cache)

    def __len__(self) -> int:
        return len(self.indices)

    def image(self, i: int) -> np.ndarray:
        """Bool ``[64 x 64]`` image of item ``i`` (rendered, or from the cache)."""
        index = int(self.indices[i])
        if self.cache is not None and index in self.cache:
            return np.unpackbits(self.cache[index])[: IMAGE_SIZE * IMAGE_SIZE].reshape(IMAGE_SIZE, IMAGE_SIZE) > 0
        img = render(index_to_factors(index))[0]
        if self.cache is not None:
            self.cache[index] = np.packbits(img)
        return img

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"DSpritesStyle: index {i} out of range for {len(self)} images")
        i = i % len(self)
        factors = index_to_factors(self.indices[i])  # (5,)
        image = torch.from_numpy(self.image(i).astype(np.float32))[None]  # (1, 64, 64)
        return {"image": image, "label": int(factors[0]), "index": i, "factors": torch.from_numpy(factors)}

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """``num`` factor-class tuples drawn independently and uniformly: int ``[num x 5]``."""
        return np.stack([rng.integers(0, size, num) for size in FACTOR_SIZES], axis=1)

    def images_of(self, factors: np.ndarray) -> torch.Tensor:
        """Rendered images of factor-class tuples: ``[N x 5]`` -> FloatTensor ``[N x 1 x 64 x 64]``."""
        return torch.from_numpy(render(factors).astype(np.float32))[:, None]  # (N, 1, 64, 64)
