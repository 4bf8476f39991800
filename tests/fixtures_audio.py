"""Builders of tiny corpora on disk (VCTK, LibriSpeech, plain folders) for reader and crop tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf


def noise(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Seeded noise in [-0.5, 0.5], (T,) or (T, C): every window differs, so crops can be located."""
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(frames, channels)).astype(np.float32)
    return wave[:, 0] if channels == 1 else wave


def write(
    path: Path, frames: int, rate: int, channels: int = 1, seed: int = 0, subtype: str | None = None
) -> Path:
    """Write ``frames`` samples of seeded noise to ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), noise(frames, channels, seed), rate, subtype=subtype)
    return path


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def corrupt_in_place(path: Path, nan: bool = False) -> None:
    """Overwrite a file keeping its size and mtime, so a cached manifest still matches it.

    nan=True rewrites a float WAV with NaN samples; otherwise the bytes become random.
    """
    st = path.stat()
    if nan:
        data, rate = sf.read(str(path), dtype="float32")
        data[len(data) // 2] = np.nan
        sf.write(str(path), data, rate, subtype="FLOAT")
    else:
        path.write_bytes(np.random.default_rng(1).integers(0, 256, st.st_size, dtype=np.uint8).tobytes())
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# utterance -> (relative path, frames, rate, channels, text or None for no transcript file)
VCTK = {
    "p225_001": ("p225/p225_001_mic1.flac", 24000, 48000, 1, "Please call Stella."),
    "p225_002": ("p225/p225_002_mic1.flac", 14400, 48000, 2, "Ask her to bring these things."),
    "p226_001": ("p226/p226_001_mic1.wav", 5513, 22050, 1, "With her from the store."),
    "p226_002": ("p226/p226_002_mic1.flac", 19200, 48000, 1, None),
}


def make_vctk(root: Path) -> Path:
    """VCTK 0.92 layout with a stereo file, a 22050 Hz .wav, a mic2 twin and a missing transcript."""
    audio = root / "wav48_silence_trimmed"
    for k, (rel, frames, rate, channels, text) in enumerate(VCTK.values()):
        write(audio / rel, frames, rate, channels, seed=k)
        spk, utt = rel.split("/")[0], Path(rel).stem.removesuffix("_mic1")
        if text is not None:
            write_text(root / "txt" / spk / f"{utt}.txt", text)
    write(audio / "p225/p225_001_mic2.flac", 24000, 48000, seed=99)
    return root


# utterance -> (split, frames at 16 kHz, text)
LIBRI = {
    "19-198-0000": ("train-clean-100", 8000, "NORTHANGER ABBEY"),
    "19-198-0001": ("train-clean-100", 4800, "THIS LITTLE WORK WAS FINISHED"),
    "26-495-0000": ("train-clean-100", 6400, "CHAPTER ONE"),
    "84-121123-0000": ("dev-clean", 3200, "GO DO YOU HEAR"),
}


def make_librispeech(root: Path) -> Path:
    """``root/LibriSpeech/<split>/<spk>/<chapter>/`` with FLAC files and ``.trans.txt`` transcripts."""
    base = root / "LibriSpeech"
    for k, (utt, (split, frames, text)) in enumerate(LIBRI.items()):
        spk, chapter, _ = utt.split("-")
        folder = base / split / spk / chapter
        write(folder / f"{utt}.flac", frames, 16000, seed=k)
        with open(folder / f"{spk}-{chapter}.trans.txt", "a", encoding="utf-8") as f:
            f.write(f"{utt} {text}\n")
    return base


def make_folder_with_bad_files(root: Path) -> Path:
    """Two good files (one at the top level) plus a corrupt, an empty and a NaN file."""
    write(root / "spk" / "good.wav", 4800, 16000, seed=1)
    write_text(root / "spk" / "good.txt", "hello there")
    write(root / "top.flac", 3200, 16000, seed=2)
    junk = np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes()
    (root / "spk" / "corrupt.flac").write_bytes(junk)
    (root / "spk" / "empty.wav").write_bytes(b"")
    nan = noise(1600)
    nan[100] = np.nan
    sf.write(str(root / "spk" / "nan.wav"), nan, 16000, subtype="FLOAT")
    return root
