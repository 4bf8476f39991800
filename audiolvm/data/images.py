"""Image data sets that work offline: scikit-learn digits, MNIST / Fashion-MNIST from the user's files,
scikit-image ``lfw_subset``, and (from :mod:`audiolvm.data.sprites`) the procedural dSprites-style set.

Every set is an :class:`ImageDataset`: ``ds[i]`` is ``{"image": FloatTensor[C x H x W], "label": int
(-1 when unknown), "index": i}``. Pixel intensities ``p = raw / max_value`` lie in [0, 1]; ``binarize``
picks what ``image`` holds:

- ``"none"``: ``p`` (or the raw levels, e.g. 0..16 for digits, with ``unit=False``);
- ``"static"``: ``p > threshold`` once and for all; for digits with the default 0.5 this is exactly the
  reference ``x / 16 > 0.5``;
- ``"dynamic"``: a fresh Bernoulli(``p``) draw every epoch, from ``derived_rng(seed, epoch, id)`` where
  ``id`` is the item's index in the full set, so a draw depends on neither worker order nor the split.
  Call ``set_epoch`` in every worker, as for :class:`audiolvm.data.crops.CropDataset`.

Nothing is downloaded: MNIST-format files (IDX, gzip or raw, or a Keras-style ``.npz``) are read from a
path the user supplies, and :func:`read_idx` checks magic numbers and sizes.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolvm.core.errors import UsageError
from audiolvm.core.seed import derived_rng
from audiolvm.data.sprites import FACTOR_NAMES, FACTOR_SIZES, DSpritesStyle, factors_to_index, index_to_factors

__all__ = [
    "BINARIZE", "FACTOR_NAMES", "FACTOR_SIZES", "DSpritesStyle", "ImageDataError", "ImageDataset",
    "digits_dataset", "digits_split", "factors_to_index", "index_to_factors", "lfw_subset_dataset",
    "mnist_dataset", "read_idx", "split_indices",
]

BINARIZE = ("none", "static", "dynamic")
# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_SPLITS = {"train": "train", "test": "t10k"}


class ImageDataError(UsageError):
    """An image data set or file that cannot be used (missing, malformed, or inconsistent)."""


class ImageDataset(Dataset):
    """Images held in memory with optional labels, ground-truth factors and binarization.

    Args:
        images: raw pixels ``[N x H x W]`` or ``[N x C x H x W]`` in ``[0, max_value]`` (kept as given,
            e.g. uint8, and converted per item).
        labels: class per image ``[N]``; None gives label -1.
        max_value: the raw value of a full-intensity pixel (16 for digits, 255 for MNIST).
        binarize: ``"none"``, ``"static"`` or ``"dynamic"`` (module docstring).
        threshold: the static threshold on ``p`` in [0, 1].
        unit: with ``binarize="none"``, True gives ``p`` in [0, 1] and False the raw values.
        seed: seeds the dynamic binarization.
        ids: each image's index in the full set (keys the dynamic draws); default ``arange(N)``.
        factors: ground-truth factor classes ``[N x F]``, returned as ``"factors"`` when given.
        name: used in error messages.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, max_value: float = 1.0,
                 binarize: str = "none", threshold: float = 0.5, unit: bool = True, seed: int = 0,
                 ids: np.ndarray | None = None, factors: np.ndarray | None = None, name: str = "images") -> None:
        if binarize not in BINARIZE:
            raise ImageDataError(f"{name}: binarize={binarize!r}; choose one of {BINARIZE}")
        if images.ndim == 3:
            images = images[:, None]  # (N, 1, H, W)
        if images.ndim != 4 or len(images) == 0:
            raise ImageDataError(f"{name}: images have shape {images.shape}; expected a non-empty [N x H x W] "
                                 "or [N x C x H x W] array")
        n = len(images)
        for field, arr in (("labels", labels), ("ids", ids), ("factors", factors)):
            if arr is not None and len(arr) != n:
                raise ImageDataError(f"{name}: {len(arr)} {field} for {n} images; pass one per image")
        self.images, self.max_value, self.name = images, float(max_value), name
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        self.factors = None if factors is None else np.asarray(factors, dtype=np.int64)
        self.binarize, self.threshold, self.unit = binarize, float(threshold), unit
        self.seed, self.epoch = int(seed), 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Select the dynamic binarization of ``epoch`` (call in every worker; DataLoader copies data sets)."""
        self.epoch = int(epoch)

    def intensity(self, i: int) -> np.ndarray:
        """``p = raw / max_value`` of item ``i``: float64 ``[C x H x W]``."""
        return np.asarray(self.images[i], dtype=np.float64) / self.max_value

    def pixels(self, i: int) -> np.ndarray:
        """What ``ds[i]["image"]`` holds, as float32 ``[C x H x W]``."""
        if self.binarize == "none":
            x = self.intensity(i) if self.unit else np.asarray(self.images[i], dtype=np.float64)
        elif self.binarize == "static":
            x = self.intensity(i) > self.threshold
        else:
            p = self.intensity(i)
            x = derived_rng(self.seed, self.epoch, int(self.ids[i])).random(p.shape) < p
        return x.astype(np.float32)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} images")
        i = i % len(self)
        item: dict[str, Any] = {"image": torch.from_numpy(self.pixels(i)),
                                "label": -1 if self.labels is None else int(self.labels[i]), "index": i}
        if self.factors is not None:
            item["factors"] = torch.from_numpy(self.factors[i])
        return item

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageDataset:
        """The items at ``indices`` (their ``ids`` kept, so dynamic draws stay the same), same settings."""
        idx = np.asarray(indices, dtype=np.int64)
        pick = None if self.labels is None else self.labels[idx]
        facs = None if self.factors is None else self.factors[idx]
        return ImageDataset(self.images[idx], pick, self.max_value, self.binarize, self.threshold, self.unit,
                            self.seed, self.ids[idx], facs, name or self.name)

    def split(self, num_test: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """A fixed (train, test) split, from :func:`split_indices`."""
        train, test = split_indices(len(self), num_test, seed)
        return self.subset(train, f"{self.name}/train"), self.subset(test, f"{self.name}/test")


def split_indices(n: int, num_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted (train, test) index arrays covering ``range(n)``; the test set has ``num_test`` items
    drawn by ``default_rng(seed).permutation(n)``, so the split depends only on ``(n, num_test, seed)``."""
    if not 0 < num_test < n:
        raise ImageDataError(f"split_indices: num_test={num_test} for {n} items; pass 0 < num_test < {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[num_test:]), np.sort(perm[:num_test])


def digits_dataset(binarize: str = "none", unit: bool = True, seed: int = 0, threshold: float = 0.5) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (17 levels 0..16, shipped in the wheel): ``image`` is ``[1 x 8 x 8]``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return ImageDataset(digits.images.astype(np.uint8), digits.target, 16.0, binarize, threshold, unit, seed,
                        name="digits")


def digits_split(num_test: int = 500, split_seed: int = 0, **kwargs: Any) -> tuple[ImageDataset, ImageDataset]:
    """Fixed digits split, 1297 / 500 by default; ``kwargs`` go to :func:`digits_dataset`."""
    return digits_dataset(**kwargs).split(num_test, split_seed)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImageDataError(f"{path}: cannot read ({err.strerror or err}); check the path") from err
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ImageDataError(f"{path}: corrupt gzip data ({err}); download or unpack the file again") from err
    return raw


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An IDX array (the MNIST file format; gzip or raw): magic ``0x0000TTNN`` with type code TT and NN
    dimensions, NN big-endian int32 sizes, then the big-endian data. Returns a native-endian array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        magic = raw[:4].hex() if raw else "(empty file)"
        raise ImageDataError(f"{path}: bad IDX magic number {magic} (expected 0000TTNN with type code TT in "
                             "08/09/0b/0c/0d/0e and NN >= 1 dimensions; MNIST images are 00000803, labels "
                             "00000801); pass an IDX file, gzip-compressed or raw")
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ImageDataError(f"{path}: {len(raw)} bytes, too short for an IDX header of {ndim} sizes; "
                             "the file is truncated")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", ndim, 4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ImageDataError(f"{path}: header says shape {shape} of {dtype.str} ({expected} bytes of data) but "
                             f"the file holds {len(raw) - header}; the file is truncated or not this IDX file")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(root: Path, prefix: str, kind: str, dims: int) -> Path:
    names = [f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"]
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise ImageDataError(f"{root}: no {names[0]}[.gz] (nor {names[1]}[.gz]); put the MNIST-format IDX files "
                         "there, or pass a .npz with x_train, y_train, x_test, y_test")


def _mnist_arrays(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            keys = (f"x_{split}", f"y_{split}")
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise ImageDataError(f"{path}: no field(s) {missing} (has {sorted(data.files)}); an MNIST .npz "
                                     "holds x_train, y_train, x_test, y_test")
            return np.asarray(data[keys[0]]), np.asarray(data[keys[1]])
    if not path.is_dir():
        raise ImageDataError(f"{path}: neither a folder of IDX files nor a .npz file; pass one of those")
    images_path = _find_idx(path, MNIST_SPLITS[split], "images", 3)
    labels_path = _find_idx(path, MNIST_SPLITS[split], "labels", 1)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ImageDataError(f"{images_path}: an IDX array of {images.dtype} with shape {images.shape}; "
                             "MNIST images are unsigned bytes [N x H x W]")
    if labels.ndim != 1:
        raise ImageDataError(f"{labels_path}: labels have shape {labels.shape}; expected [N]")
    if len(labels) != len(images):
        raise ImageDataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}; "
                             "the two files must come from the same split")
    return images, labels


def mnist_dataset(path: str | os.PathLike[str], split: str = "train", binarize: str = "none", seed: int = 0,
                  threshold: float = 0.5, unit: bool = True) -> ImageDataset:
    """MNIST or Fashion-MNIST (same format) from local files; ``image`` is ``[1 x 28 x 28]``.

    ``path`` is a folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``), or a ``.npz`` with
    ``x_train, y_train, x_test, y_test``. uint8 pixels are divided by 255; float pixels must lie in [0, 1].
    """
    if split not in MNIST_SPLITS:
        raise ImageDataError(f"mnist_dataset: split={split!r}; choose 'train' or 'test'")
    path = Path(path)
    images, labels = _mnist_arrays(path, split)
    name = f"{path}[{split}]"
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ImageDataError(f"{name}: images {images.shape} and labels {labels.shape}; expected [N x H x W] "
                             "and [N]")
    if images.dtype == np.uint8:
        max_value = 255.0
    elif np.issubdtype(images.dtype, np.floating) and images.size and 0 <= images.min() and images.max() <= 1:
        max_value = 1.0
    else:
        raise ImageDataError(f"{name}: pixels of {images.dtype} outside both 0..255 (uint8) and [0, 1] (float); "
                             "convert them first")
    return ImageDataset(images, labels, max_value, binarize, threshold, unit, seed, name=name)


def lfw_subset_dataset(binarize: str = "none", seed: int = 0, threshold: float = 0.5) -> ImageDataset:
    """scikit-image's ``lfw_subset``: 200 grey 25x25 images shipped in its wheel; label 1 for the first
    100 (faces) and 0 for the other 100 (non-faces). Needs the optional ``scikit-image`` package."""
    try:
        from skimage.data import lfw_subset
    except ImportError as err:
        raise ImageDataError("lfw_subset needs scikit-image, which is not installed; run `pip install "
                             "scikit-image` (the 200 images ship in its wheel, nothing is downloaded)") from err
    images = np.asarray(lfw_subset(), dtype=np.float32)  # (200, 25, 25) in [0, 1]
    labels = np.r_[np.ones(100, np.int64), np.zeros(len(images) - 100, np.int64)]
    return ImageDataset(images, labels, 1.0, binarize, threshold, True, seed, name="lfw_subset")
