"""Audio I/O: read anything soundfile reads, downmix to mono, resample with soxr, write WAV/FLAC.

Every failure to get usable audio out of a file raises :class:`AudioError`, which names the
file and the reason, so a corpus reader can skip and count it instead of crashing mid-epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

PathLike = str | Path


class AudioError(Exception):
    """A file that cannot be used as audio. ``str(err)`` is ``"<path>: <reason>; <fix>"``."""

    def __init__(self, path: PathLike, reason: str, fix: str = "remove the file or fix it") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}; {fix}")


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


#: sample rates a header may claim; outside this range it is corrupt (a 1 Hz header reads 20 s as 89 days)
MIN_RATE, MAX_RATE = 1000, 384000


#: a file (its loudest block) or a training crop quieter than this RMS level is silence: it is skipped at scan
#: time, and a random crop this quiet is drawn again (an all-zero crop teaches nothing and upsets the loss)
SILENCE_DBFS = -60.0


def rms_dbfs(wave: np.ndarray) -> float:
    """RMS level of ``wave`` in dB relative to full scale (-inf for digital silence or an empty wave)."""
    if wave.size == 0:
        return -np.inf
    power = float(np.mean(np.square(wave, dtype=np.float64)))
    return 10.0 * np.log10(power) if power > 0 else -np.inf


def audio_info(path: PathLike) -> AudioInfo:
    """Header-only probe (no decode). Raises AudioError for unreadable or empty files."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError)
        raise AudioError(path, f"unreadable by soundfile ({exc})") from exc
    if info.channels < 1:
        raise AudioError(path, "0 channels")
    if info.frames <= 0:
        raise AudioError(path, "0 samples (empty file)")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(path, f"sample rate outside {MIN_RATE}-{MAX_RATE} Hz (header says {info.samplerate} Hz; a "
                               "corrupt header? re-encode the file)")
    return AudioInfo(str(path), int(info.samplerate), int(info.frames), int(info.channels))


def load_audio(
    path: PathLike,
    sample_rate: int | None = None,
    *,
    require_rate: int | None = None,
    offset: int = 0,
    frames: int = -1,
) -> tuple[np.ndarray, int]:
    """Read ``path`` as mono float32.

    Args:
        sample_rate: resample to this rate with soxr (None keeps the file's rate).
        require_rate: if set, a file at any other rate is an error (no resampling).
        offset, frames: read a window, in samples at the *file's* rate.

    Returns:
        (wave, rate): ``wave`` is float32 of shape (T,).
    """
    try:
        data, rate = sf.read(str(path), start=offset, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, f"unreadable by soundfile ({exc})") from exc
    if data.shape[1] == 0:
        raise AudioError(path, "0 channels")
    if data.shape[0] == 0:
        raise AudioError(path, "0 samples (empty file)")
    if not np.isfinite(data).all():
        raise AudioError(path, "non-finite samples (NaN or Inf)")
    if require_rate is not None and rate != require_rate:
        raise AudioError(path, f"sample rate {rate} Hz, expected {require_rate} Hz", "resample the corpus first")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (T,)
    if sample_rate is not None and sample_rate != rate:
        wave = resample(wave, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(wave, dtype=np.float32), int(rate)


def resample(wave: np.ndarray, rate_in: int, rate_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample a (T,) or (T, C) float array with soxr."""
    if rate_in == rate_out:
        return wave
    return soxr.resample(wave, rate_in, rate_out, quality=quality).astype(np.float32, copy=False)


def save_audio(path: PathLike, wave: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write mono (T,) or (T, C) audio; format from the suffix (.wav, .flac). Clips to [-1, 1].

    The file is written to a temporary name in the same folder, then renamed, so a crash never
    leaves a half-written file under the final name.
    """
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported audio suffix {path.suffix!r}; use .wav or .flac")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2 and wave.shape[0] < wave.shape[1] and wave.shape[0] <= 8:
        wave = wave.T  # (C, T) -> (T, C)
    wave = np.clip(wave, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(str(tmp), wave, int(sample_rate), format=fmt, subtype=subtype or "PCM_16")
    tmp.replace(path)
    return path


def quantize(wave: np.ndarray, bits: int) -> np.ndarray:
    """Round ``wave`` (in [-1, 1]) to a ``bits``-bit grid, step ``2 ** (1 - bits)``; same shape and dtype.

    Written as 16-bit PCM FLAC, the unused low bits cost nothing: 12 bits make a file about 40%
    smaller (at about 74 dB SNR). ``bits=16`` is the PCM_16 grid itself.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"quantize: bits={bits}; choose 1..16 effective bits")
    step = 2.0 ** (1 - bits)
    return np.round(wave / step) * step
