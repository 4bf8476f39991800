"""Audio I/O: read anything soundfile reads, downmix to mono, resample with soxr, write WAV/FLAC.

Every failure to get usable audio out of a file raises :class:`AudioError`, which names the
file and the reason, so a corpus reader can skip and count it instead of crashing mid-epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from audiolvm.core.errors import AudiolvmError, UsageError

PathLike = str | Path


class AudioError(AudiolvmError):
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
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_BLOCK = 1 << 16  # frames per block of the scan-time decode (about 4 s at 16 kHz)


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
        raise UsageError(f"{path}: unsupported audio suffix {path.suffix!r}; use .wav or .flac")
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
        raise UsageError(f"quantize: bits={bits}; choose 1..16 effective bits")
    step = 2.0 ** (1 - bits)
    return np.round(wave / step) * step


def probe_audio(path: PathLike) -> AudioInfo:
    """Header probe with :func:`audio_info`, then one streaming decode (:func:`check_samples`): NaN/Inf samples,
    silence and a body that fails to decode are found at scan time, not mid-epoch. A 0-byte file is reported as
    such (soundfile would only say "Format not recognised"). Raises AudioError.
    """
    if os.path.getsize(path) == 0:
        raise AudioError(path, "0 bytes (empty file)")
    info = audio_info(path)
    check_samples(str(path), str(path))
    return info


def check_samples(source: str | BinaryIO, name: str) -> None:
    """Decode ``source`` block by block (constant memory) and raise AudioError if a float file holds NaN or Inf,
    if even its loudest block is quieter than :data:`SILENCE_DBFS` (a silent file), or if the body fails to
    decode (a file truncated after its header).

    Args:
        source: a path or a seekable file object that soundfile can open.
        name: what the error names (the path, or a virtual path such as ``hf://3``).
    """
    loudest = -np.inf
    try:
        with sf.SoundFile(source) as f:
            is_float = f.subtype in _FLOAT_SUBTYPES
            for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
                if is_float and not np.isfinite(block).all():
                    raise AudioError(name, "non-finite samples (NaN or Inf)")
                loudest = max(loudest, rms_dbfs(block.mean(axis=1)))  # (B, C) -> (B,)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(name, f"unreadable by soundfile ({exc})") from exc
    if loudest < SILENCE_DBFS:
        raise AudioError(name, f"silent (loudest block {loudest:.0f} dBFS RMS, below {SILENCE_DBFS:.0f} dBFS)",
                         "remove the file or replace it with the real recording")


def probe_source(source: BinaryIO | str, name: str) -> AudioInfo:
    """Header probe of a path or in-memory file, then :func:`check_samples`. Raises AudioError."""
    try:
        with sf.SoundFile(source) as f:
            rate, frames, channels = f.samplerate, f.frames, f.channels
    except Exception as exc:
        raise AudioError(name, f"unreadable by soundfile ({exc})") from exc
    if frames <= 0:
        raise AudioError(name, "0 samples (empty file)")
    if not isinstance(source, str):
        source.seek(0)
    check_samples(source, name)
    return AudioInfo(name, int(rate), int(frames), int(channels))


def decode_source(source: BinaryIO | str, name: str, offset: int, frames: int) -> tuple[np.ndarray, int]:
    """Like :func:`load_audio` for a path or in-memory file: mono float32 (T,) at the file's rate."""
    try:
        data, rate = sf.read(source, start=offset, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(name, f"unreadable by soundfile ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(name, "0 samples (empty file)")
    if not np.isfinite(data).all():
        raise AudioError(name, "non-finite samples (NaN or Inf)")
    return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)  # (T, C) -> (T,)
