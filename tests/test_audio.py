"""Audio I/O: formats, downmix, resampling, and one clear error for each kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolvm.core.audio import AudioError, audio_info, load_audio, save_audio


def sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    x = sine(16000, 0.5)
    path = save_audio(tmp_path / f"a{suffix}", x, 16000)
    y, rate = load_audio(path)
    assert rate == 16000 and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() < 1e-4  # 16-bit quantisation
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_stereo_is_downmixed_and_resampled(tmp_path: Path) -> None:
    left, right = sine(22050, 1.0, 300), sine(22050, 1.0, 300) * 0.0
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 22050)
    y, rate = load_audio(tmp_path / "s.wav", sample_rate=16000)
    assert rate == 16000 and abs(len(y) - 16000) <= 1
    ref = sine(16000, 1.0, 300) * 0.5  # mean of the two channels
    assert np.abs(y[200:-200] - ref[200 : len(y) - 200]).max() < 1e-2
    assert audio_info(tmp_path / "s.wav").channels == 2


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "garbage.flac").write_bytes(b"not audio at all" * 10)
    (tmp_path / "zero.wav").write_bytes(b"")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    nan = sine(16000, 0.1)
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(tmp_path / "rate.wav", sine(8000, 0.1), 8000)
    return {
        "unreadable": (tmp_path / "garbage.flac", "unreadable"),
        "zero-bytes": (tmp_path / "zero.wav", "unreadable"),
        "empty": (tmp_path / "empty.wav", "0 samples"),
        "nan": (tmp_path / "nan.wav", "non-finite"),
        "rate": (tmp_path / "rate.wav", "expected 16000"),
    }


@pytest.mark.parametrize("case", ["unreadable", "zero-bytes", "empty", "nan", "rate"])
def test_bad_audio_gives_one_clear_error(tmp_path: Path, case: str) -> None:
    path, reason = bad_files(tmp_path)[case]
    with pytest.raises(AudioError) as info:
        load_audio(path, require_rate=16000)
    message = str(info.value)
    assert message.startswith(str(path)) and reason in message and ";" in message  # file, reason, fix
    assert info.value.path == str(path)
