"""Image data sets: digits (split, static and dynamic binarization), the dSprites-style generator,
MNIST-format IDX / npz files, and the optional scikit-image lfw_subset."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from audiolvm.data.images import (
    ImageDataError,
    digits_dataset,
    digits_split,
    lfw_subset_dataset,
    mnist_dataset,
    read_idx,
    split_indices,
)
from audiolvm.data.sprites import (
    FACTOR_SIZES,
    NUM_IMAGES,
    DSpritesStyle,
    factors_to_index,
    index_to_factors,
    render,
    subsample,
)

torch.set_num_threads(1)
RAW_DIGITS = load_digits().images  # (1797, 8, 8), levels 0..16


# ---------------------------------------------------------------- digits

def test_digits_split_is_fixed_by_seed_and_disjoint() -> None:
    train, test = digits_split(num_test=500, split_seed=3)
    assert (len(train), len(test)) == (1297, 500)
    assert not set(train.ids) & set(test.ids) and len(set(train.ids) | set(test.ids)) == 1797
    again, _ = digits_split(num_test=500, split_seed=3)
    other, _ = digits_split(num_test=500, split_seed=4)
    assert np.array_equal(train.ids, again.ids) and not np.array_equal(train.ids, other.ids)
    # items follow their ids: image and label of the full set
    k = 17
    np.testing.assert_allclose(train[k]["image"][0].numpy(), RAW_DIGITS[train.ids[k]] / 16, rtol=1e-6)
    assert train[k]["label"] == load_digits().target[train.ids[k]] and train[k]["index"] == k


def test_digits_scaling_options() -> None:
    unit, levels = digits_dataset(), digits_dataset(unit=False)
    item = unit[5]
    assert item["image"].shape == (1, 8, 8) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert torch.equal(levels[5]["image"][0], torch.from_numpy(RAW_DIGITS[5].astype(np.float32)))


def test_static_binarization_is_the_reference_threshold() -> None:
    ds = digits_dataset(binarize="static")
    for i in (0, 1, 100, 1796):
        assert np.array_equal(ds[i]["image"][0].numpy(), (RAW_DIGITS[i] / 16 > 0.5).astype(np.float32))


def test_dynamic_binarization_resamples_per_epoch_and_is_reproducible() -> None:
    ds = digits_dataset(binarize="dynamic", seed=11)
    ds.set_epoch(0)
    e0 = ds[42]["image"]
    ds.set_epoch(1)
    e1 = ds[42]["image"]
    assert set(e0.unique().tolist()) <= {0.0, 1.0} and not torch.equal(e0, e1)
    twin = digits_dataset(binarize="dynamic", seed=11)
    twin.set_epoch(1)
    assert torch.equal(twin[42]["image"], e1)
    other_seed = digits_dataset(binarize="dynamic", seed=12)
    other_seed.set_epoch(1)
    assert not torch.equal(other_seed[42]["image"], e1)
    # a subset keeps the full set's ids, so its draws match the full set's
    train, _ = digits_split(binarize="dynamic", seed=11)
    train.set_epoch(1)
    k = 100
    assert torch.equal(train[k]["image"], ds[int(train.ids[k])]["image"])


def test_dynamic_binarization_mean_approaches_intensity() -> None:
    ds = digits_dataset(binarize="dynamic", seed=0)
    epochs = 400
    mean = np.zeros((8, 8))
    for e in range(epochs):
        ds.set_epoch(e)
        mean += ds[7]["image"][0].numpy()
    mean /= epochs
    # Bernoulli mean over 400 draws: std <= 0.025 per pixel; 0.1 is four stds
    assert np.abs(mean - RAW_DIGITS[7] / 16).max() < 0.1


def test_split_indices_rejects_bad_sizes() -> None:
    with pytest.raises(ImageDataError, match="num_test=10 for 10 items"):
        split_indices(10, 10)
    with pytest.raises(ImageDataError, match="binarize='soft'"):
        digits_dataset(binarize="soft")


# ---------------------------------------------------------------- dSprites-style

def test_index_factor_bijection_round_trips() -> None:
    rng = np.random.default_rng(0)
    idx = np.r_[0, NUM_IMAGES - 1, rng.integers(0, NUM_IMAGES, 2000)]
    factors = index_to_factors(idx)
    assert np.array_equal(factors_to_index(factors), idx)
    assert np.array_equal(factors[0], [0, 0, 0, 0, 0])
    assert np.array_equal(factors[1], np.array(FACTOR_SIZES) - 1)
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in FACTOR_SIZES], indexing="ij")).reshape(5, -1).T  # (32, 5)
    assert np.array_equal(index_to_factors(factors_to_index(corners)), corners)
    assert np.array_equal(index_to_factors([1, 32]), [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]])  # pos_y fastest
    with pytest.raises(IndexError):
        index_to_factors(NUM_IMAGES)
    with pytest.raises(ValueError, match="out of range"):
        factors_to_index([3, 0, 0, 0, 0])


def _centroid(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(img)
    return cols.mean(), rows.mean()


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_centroid_moves_monotonically_with_position(shape: int) -> None:
    along_x = render([[shape, 3, 7, x, 10] for x in range(32)])
    along_y = render([[shape, 3, 7, 20, y] for y in range(32)])
    cx = np.array([_centroid(im)[0] for im in along_x])
    cy = np.array([_centroid(im)[1] for im in along_y])
    assert (np.diff(cx) > 0).all() and (np.diff(cy) > 0).all()
    assert np.ptp([_centroid(im)[1] for im in along_x]) < 1.0 < 40 < np.ptp(cx)  # rows move only by rasterisation


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_area_grows_with_scale(shape: int) -> None:
    for orientation in (0, 5, 13):
        areas = render([[shape, s, orientation, 16, 16] for s in range(6)]).sum(axis=(1, 2))
        assert (np.diff(areas) > 0).all(), areas


def test_orientation_changes_non_symmetric_shapes() -> None:
    heart = render([[2, 5, o, 16, 16] for o in range(40)])
    assert all(not np.array_equal(heart[0], heart[o]) for o in range(1, 39))
    assert np.array_equal(heart[0], heart[39])  # 0 and 2*pi, as in the original grid
    ellipse = render([[1, 5, o, 16, 16] for o in (0, 5, 10)])  # 0, ~46, ~92 degrees
    assert not np.array_equal(ellipse[0], ellipse[1]) and not np.array_equal(ellipse[0], ellipse[2])


def test_sprites_dataset_items_subset_and_cache() -> None:
    idx = subsample(50, seed=1)
    assert len(np.unique(idx)) == 50 and np.array_equal(idx, subsample(50, seed=1))
    ds = DSpritesStyle(idx, cache=True)
    item = ds[3]
    assert item["image"].shape == (1, 64, 64) and set(item["image"].unique().tolist()) == {0.0, 1.0}
    assert factors_to_index(item["factors"].numpy()) == idx[3] and item["label"] == item["factors"][0]
    assert torch.equal(ds[3]["image"], item["image"]) and len(ds.cache) == 1  # second read from the cache
    hearts = DSpritesStyle.subset(20, seed=0, fixed={"shape": 2, "scale": 5})
    assert all(hearts[i]["factors"][0] == 2 and hearts[i]["factors"][1] == 5 for i in range(20))
    with pytest.raises(ValueError, match="only 1024 images"):
        subsample(2000, fixed={"shape": 0, "scale": 0, "orientation": 0})
    with pytest.raises(ValueError, match="unknown factors"):
        subsample(5, fixed={"colour": 0})


def test_sprites_factor_source_renders_requested_factors() -> None:
    ds = DSpritesStyle()
    factors = ds.sample_factors(16, np.random.default_rng(0))
    assert factors.shape == (16, 5) and (factors < np.array(FACTOR_SIZES)).all()
    images = ds.images_of(factors)
    assert images.shape == (16, 1, 64, 64)
    assert torch.equal(images[4, 0], torch.from_numpy(render(factors[4])[0].astype(np.float32)))


# ---------------------------------------------------------------- MNIST-format files

def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_mnist(root: Path, images: np.ndarray, labels: np.ndarray, gz: bool, prefix: str = "train") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in ((f"{prefix}-images-idx3-ubyte", _idx_bytes(images)),
                       (f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels))):
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)


@pytest.fixture
def tiny() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 4, 3), dtype=np.uint8), np.array([3, 1, 4, 1, 5], dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_read_back_exactly(tmp_path: Path, tiny: tuple[np.ndarray, np.ndarray], gz: bool) -> None:
    images, labels = tiny
    _write_mnist(tmp_path, images, labels, gz)
    suffix = ".gz" if gz else ""
    assert np.array_equal(read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), images)
    ds = mnist_dataset(tmp_path, "train")
    assert len(ds) == 5 and ds[2]["label"] == 4 and ds[2]["image"].shape == (1, 4, 3)
    np.testing.assert_allclose(ds[2]["image"][0].numpy(), images[2] / 255, rtol=1e-6)
    static = mnist_dataset(tmp_path, "train", binarize="static")
    assert np.array_equal(static[0]["image"][0].numpy(), (images[0] / 255 > 0.5).astype(np.float32))


def test_idx_other_types_are_big_endian(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=">i4").reshape(2, 3) * 1000
    (tmp_path / "x.idx").write_bytes(_idx_bytes(arr, 0x0C))
    out = read_idx(tmp_path / "x.idx")
    assert np.array_equal(out, arr) and out.dtype == np.int32


def test_idx_errors_name_the_file(tmp_path: Path, tiny: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny
    bad = tmp_path / "bad-images"
    bad.write_bytes(b"\x00\x00\x07\x03" + _idx_bytes(images)[4:])
    with pytest.raises(ImageDataError, match=r"bad-images: bad IDX magic number 00000703"):
        read_idx(bad)
    truncated = tmp_path / "short"
    truncated.write_bytes(_idx_bytes(images)[:-7])
    with pytest.raises(ImageDataError, match="short: header says shape"):
        read_idx(truncated)
    _write_mnist(tmp_path / "m", images, labels[:4], gz=True)
    with pytest.raises(ImageDataError, match="4 labels for 5 images"):
        mnist_dataset(tmp_path / "m")
    with pytest.raises(ImageDataError, match="no t10k-images-idx3-ubyte"):
        mnist_dataset(tmp_path / "m", "test")


def test_npz_mnist(tmp_path: Path, tiny: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = tiny
    path = tmp_path / "fashion.npz"
    np.savez(path, x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    test = mnist_dataset(path, "test", binarize="dynamic", seed=5)
    assert len(test) == 2 and test[1]["label"] == 1
    np.savez(tmp_path / "partial.npz", x_train=images)
    with pytest.raises(ImageDataError, match=r"partial.npz: no field\(s\) \['y_train'\]"):
        mnist_dataset(tmp_path / "partial.npz")


# ---------------------------------------------------------------- lfw_subset (optional scikit-image)

def test_lfw_subset_without_scikit_image_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(ImageDataError, match="pip install scikit-image"):
        lfw_subset_dataset()


def test_lfw_subset_loads_when_installed() -> None:
    pytest.importorskip("skimage")
    ds = lfw_subset_dataset(binarize="static")
    assert len(ds) == 200 and ds[0]["image"].shape == (1, 25, 25)
    assert ds[0]["label"] == 1 and ds[199]["label"] == 0
