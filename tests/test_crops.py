"""CropDataset, UtteranceDataset and the engine's EpochSampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from audiolvm.core.audio import load_audio
from audiolvm.data import (
    CorpusError,
    CropDataset,
    FolderReader,
    UtteranceDataset,
    VCTKReader,
)
from audiolvm.engine.sampling import EpochSampler
from tests.fixtures_audio import corrupt_in_place, make_vctk, write

CROP = 1600


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[FolderReader, list]:
    """16 kHz files: two long (1 s, 0.5 s), one shorter than the crop; one 22.05 kHz file."""
    write(tmp_path / "a" / "long.flac", 16000, 16000, seed=1)
    write(tmp_path / "a" / "mid.wav", 8000, 16000, seed=2)
    write(tmp_path / "b" / "short.wav", 1000, 16000, seed=3)
    write(tmp_path / "b" / "other_rate.wav", 22050, 22050, seed=4)
    reader = FolderReader(tmp_path)
    return reader, reader.entries()


def test_crops_have_shape_and_match_the_file_window(corpus: tuple[FolderReader, list]) -> None:
    reader, entries = corpus
    ds = CropDataset(reader, entries, CROP, 16000, seed=7)
    assert ds.speakers == ["a", "b"] and len(ds) == 4
    for i, entry in enumerate(entries):
        item = ds[i]
        assert item["audio"].shape == (1, CROP) and item["audio"].dtype == torch.float32
        assert item["index"] == i and item["speaker"] == ds.speakers.index(entry.speaker)
        full, _ = load_audio(entry.path, sample_rate=16000)  # resamples the 22.05 kHz file too
        start = ds.offset(i, len(full))
        n = item["length"]
        assert n == min(CROP, len(full))
        np.testing.assert_allclose(item["audio"][0, :n].numpy(), full[start : start + n], atol=1e-6)
        assert not item["audio"][0, n:].any()  # zero padding after the valid samples


def test_short_file_is_zero_padded(corpus: tuple[FolderReader, list]) -> None:
    reader, entries = corpus
    ds = CropDataset(reader, entries, CROP, 16000)
    i = next(k for k, e in enumerate(entries) if e.utterance == "b/short")
    item = ds[i]
    assert item["length"] == 1000 and item["audio"][0, :1000].abs().sum() > 0
    assert torch.equal(item["audio"][0, 1000:], torch.zeros(CROP - 1000))
    assert len(CropDataset(reader, entries, CROP, 16000, min_duration=0.1)) == 3


def test_offsets_depend_only_on_seed_epoch_index(corpus: tuple[FolderReader, list]) -> None:
    reader, entries = corpus
    a = CropDataset(reader, entries, CROP, 16000, seed=3)
    b = CropDataset(reader, entries, CROP, 16000, seed=3)
    _ = [b[i] for i in reversed(range(len(b)))]  # another access order must not matter
    assert torch.equal(a[0]["audio"], b[0]["audio"])
    epoch0 = a[0]["audio"].clone()
    a.set_epoch(1)
    assert not torch.equal(a[0]["audio"], epoch0)
    assert a.offset(0, 16000) != CropDataset(reader, entries, CROP, 16000, seed=3).offset(0, 16000)
    a.set_epoch(0)
    assert torch.equal(a[0]["audio"], epoch0)
    center = CropDataset(reader, entries, CROP, 16000, random=False)
    assert center.offset(0, 16000) == (16000 - CROP) // 2


def test_dataloader_workers_give_the_same_batches(corpus: tuple[FolderReader, list]) -> None:
    reader, entries = corpus
    ds = CropDataset(reader, entries, CROP, 16000, seed=5)
    ds.set_epoch(2)

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochSampler(len(ds), seed=5)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers)
        return [b["audio"] for b in loader]

    assert all(torch.equal(x, y) for x, y in zip(batches(0), batches(2), strict=True))


def test_file_corrupted_after_scan_is_skipped(corpus: tuple[FolderReader, list]) -> None:
    reader, entries = corpus
    ds = CropDataset(reader, entries, CROP, 16000)
    corrupt_in_place(Path(entries[0].path))
    item = ds[0]
    assert item["index"] == 1 and torch.equal(item["audio"], ds[1]["audio"])
    assert ds.skipped == {"unreadable by soundfile": 1}
    for e in entries[1:]:
        corrupt_in_place(Path(e.path))
    with pytest.raises(CorpusError, match="all 4 entries failed to decode"):
        ds[2]


def test_utterance_dataset_returns_whole_files(tmp_path: Path) -> None:
    reader = VCTKReader(make_vctk(tmp_path))
    entries = reader.entries()
    ds = UtteranceDataset(reader, entries, 16000, speakers=["p225"])
    item = ds[0]
    assert item["audio"].shape == (1, 8000) and item["length"] == 8000  # 24000 samples at 48 kHz
    assert item["speaker"] == 0 and ds[len(ds) - 1]["speaker"] == -1  # p226 is not in the given list


def test_sampler_depends_only_on_seed_and_epoch() -> None:
    s = EpochSampler(50, seed=3)
    first = list(s)
    assert sorted(first) == list(range(50)) and len(s) == 50
    assert list(EpochSampler(50, seed=3)) == first
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(3 * 1_000_003)).tolist()
    assert first == expected
    s.set_epoch(1)
    assert list(s) != first and sorted(s) == list(range(50))
    assert list(EpochSampler(50, seed=4)) != first
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_silent_crops_are_drawn_again_deterministically(tmp_path: Path) -> None:
    """A 4 s file that is silent but for 1 s of sound (speech with long pauses): the first draw of a random
    crop is often pure silence; every crop the dataset returns now holds sound, and the same (seed, epoch,
    index) gives the same crop (exact resume)."""
    import soundfile as sf

    wave = np.zeros(16000 * 4, np.float32)
    wave[24000:40000] = np.random.default_rng(0).uniform(-0.5, 0.5, 16000)
    sf.write(str(tmp_path / "pauses.wav"), wave, 16000)
    reader = FolderReader(tmp_path)
    ds = CropDataset(reader, reader.entries(), 6400, 16000, seed=1)
    first_silent, sums = 0, set()
    for epoch in range(16):
        ds.set_epoch(epoch)
        first_silent += not 24000 - 6400 < ds.offset(0, len(wave)) < 40000  # the draw before any redraw
        crop = ds[0]["audio"]
        assert crop.abs().max() > 0.1, f"epoch {epoch}: a silent crop"
        assert torch.equal(ds[0]["audio"], crop)
        sums.add(crop.sum().item())
    assert first_silent >= 4 and len(sums) > 8  # the redraw was needed, and crops still vary across epochs


def test_resampled_cache_gives_the_same_crops_and_is_reused(tmp_path: Path) -> None:
    """data.cache: resampled decodes and resamples each 22.05 kHz file once; crops from the cache equal the
    direct ones to int16 precision, the second build reads the cache back, and a new file rebuilds it."""
    from audiolvm.data.cache import CachedReader, ResampledCache

    write(tmp_path / "a" / "one.wav", 22050, 22050, seed=1)
    write(tmp_path / "a" / "two.flac", 44100, 22050, seed=2)
    write(tmp_path / "b" / "same_rate.wav", 16000, 16000, seed=3)
    reader = FolderReader(tmp_path)
    entries = reader.entries()
    cache = ResampledCache.build(reader, entries, 16000, tmp_path, progress=False)
    assert cache is not None and len(cache.index) == 2  # the 16 kHz file is read as windows, never cached
    direct = CropDataset(reader, entries, CROP, 16000, seed=3)
    cached = CropDataset(CachedReader(reader, cache), entries, CROP, 16000, seed=3)
    for i in range(len(entries)):
        np.testing.assert_allclose(cached[i]["audio"].numpy(), direct[i]["audio"].numpy(), atol=1 / 32768 + 1e-6)
    assert ResampledCache.build(reader, entries, 22050, tmp_path, progress=False) is not None  # one file
    assert ResampledCache.build(reader, entries[-1:], 16000, tmp_path, progress=False) is None  # nothing to do
    again = ResampledCache.build(reader, entries, 16000, tmp_path, progress=False)
    assert again is not None and again.index == cache.index and again.folder == cache.folder
    write(tmp_path / "b" / "new.wav", 22050, 22050, seed=4)
    reader = FolderReader(tmp_path)
    rebuilt = ResampledCache.build(reader, reader.entries(), 16000, tmp_path, progress=False)
    assert rebuilt is not None and len(rebuilt.index) == 3
    assert not list(tmp_path.glob(".audiolvm_audio*.tmp")) and not list(tmp_path.glob(".audiolvm_audio*.old"))
