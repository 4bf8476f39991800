"""Corpus manifests: entries, finding and probing files, the cached scan, and train/valid splits.

A scan walks the corpus, probes every audio file's header with :func:`audio_info` and decodes it once,
streaming (:func:`check_samples`: NaN/Inf, silence, a body that fails to decode), and writes the result as
JSON lines: a header line with a signature of the file list (relative
paths, sizes, mtimes) and the reader's kind and options, then one line per file, either an entry
or ``{"path": ..., "error": reason}``. The next scan with the same signature reads the file back
instead of probing again, so a 44-hour corpus is probed once. Bad files stay in the manifest and
are not re-probed until the file list changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from audiolvm.core.audio import SILENCE_DBFS, AudioError, AudioInfo, audio_info, rms_dbfs
from audiolvm.core.seed import derived_rng

MANIFEST_VERSION = 2  # 2: every file is decoded once at scan time, silent files are skipped
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_BLOCK = 1 << 16  # frames per block of the scan-time decode (about 4 s at 16 kHz)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".w64")


class CorpusError(ValueError):
    """A corpus that cannot be used as a whole (no files, unknown layout, every file bad)."""


@dataclass(frozen=True)
class Entry:
    """One utterance of a corpus, as found by a scan. ``frames`` and ``sample_rate`` are the file's."""

    path: str
    speaker: str
    utterance: str
    text: str
    duration: float
    sample_rate: int
    frames: int


@dataclass
class ScanResult:
    """Entries that probed fine and ``(path, reason)`` for the files that did not."""

    entries: list[Entry]
    bad: list[tuple[str, str]]
    from_cache: bool = False


def probe_audio(path: str | Path) -> AudioInfo:
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
    if even its loudest block is quieter than :data:`~audiolvm.core.audio.SILENCE_DBFS` (a silent file), or if
    the body fails to decode (a file truncated after its header).

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
    """Header probe of a path or in-memory file (plus the NaN check for float files)."""
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


def no_audio_message(root: Path | str, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> str:
    """The error text for a folder with no audio: what was looked for and what to pass instead."""
    return (f"{root}: no audio files found (looked for {', '.join(extensions)} in a VCTK "
            "(wav48_silence_trimmed/<spk>/), LibriSpeech (<split>/<spk>/<chapter>/) or plain folder "
            "layout); pass --data to a folder with audio files")


def walk_files(root: Path, extensions: Sequence[str]) -> list[Path]:
    """Sorted files under ``root`` whose suffix is in ``extensions``; hidden files/folders skipped."""
    exts = {e.lower() for e in extensions}
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, n) for n in names if not n.startswith(".") and Path(n).suffix.lower() in exts]
    return sorted(found)


def has_files(root: Path, extensions: Sequence[str]) -> bool:
    """True as soon as one non-hidden file with a suffix in ``extensions`` is found under ``root``."""
    exts = {e.lower() for e in extensions}
    for _folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not n.startswith(".") and Path(n).suffix.lower() in exts for n in names):
            return True
    return False


def is_librispeech_split(folder: Path) -> bool:
    """True if ``folder`` looks like one LibriSpeech split (``<spk>/<chapter>/*.trans.txt``)."""
    return next(folder.glob("*/*/*.trans.txt"), None) is not None


def librispeech_splits(root: Path) -> dict[str, Path]:
    """Split folders of a LibriSpeech tree: ``root`` itself if it is one, else its children."""
    if is_librispeech_split(root):
        return {root.name: root}
    found = {c.name: c for c in sorted(root.iterdir()) if c.is_dir() and is_librispeech_split(c)}
    if not found and (root / "LibriSpeech").is_dir():
        return librispeech_splits(root / "LibriSpeech")
    return found


def file_signature(root: Path, files: Sequence[Path], kind: str, options: dict) -> str:
    """sha256 over (relative path, size, mtime_ns) of ``files`` plus the reader kind and options."""
    h = hashlib.sha256(json.dumps([MANIFEST_VERSION, kind, options], sort_keys=True, default=str).encode())
    for path in files:
        st = path.stat()
        h.update(f"{path.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_candidates(root: Path, kind: str, cache_dir: str | Path | None = None) -> list[Path]:
    """Where the manifest of ``root`` may live, in order of preference.

    ``<root>/.audiolvm_manifest.<kind>.jsonl`` first, then ``<cache_dir>/<hash>.jsonl`` where
    ``cache_dir`` defaults to ``$XDG_CACHE_HOME/audiolvm`` (``~/.cache/audiolvm``), for a
    read-only corpus. An explicit ``cache_dir`` is the only candidate.
    """
    key = hashlib.sha256(f"{root.resolve()}\0{kind}".encode()).hexdigest()[:24]
    if cache_dir is not None:
        return [Path(cache_dir) / f"{key}.jsonl"]
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [root / f".audiolvm_manifest.{kind}.jsonl", Path(xdg) / "audiolvm" / f"{key}.jsonl"]


def read_manifest(path: Path, root: Path, signature: str) -> ScanResult | None:
    """The cached scan at ``path`` if its signature matches, else None (missing, stale, corrupt)."""
    entries, bad = [], []
    try:
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline())
            if header.get("signature") != signature:
                return None
            for line in f:
                rec = json.loads(line)
                full = str(root / rec["path"])
                if "error" in rec:
                    bad.append((full, str(rec["error"])))
                else:
                    entries.append(Entry(**{**rec, "path": full}))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return ScanResult(entries, bad, from_cache=True)


def write_manifest(path: Path, root: Path, header: dict, result: ScanResult) -> None:
    """Write ``result`` as JSON lines, atomically (temporary file in the same folder + os.replace)."""

    def rel(p: str) -> str:
        return Path(p).relative_to(root).as_posix()

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            for e in result.entries:
                f.write(json.dumps({**asdict(e), "path": rel(e.path)}) + "\n")
            for p, reason in result.bad:
                f.write(json.dumps({"path": rel(p), "error": reason}) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def probe_files(files: Sequence[Path], workers: int = 8) -> list[AudioInfo | AudioError]:
    """Probe every file (threads: libsndfile releases the GIL); errors are returned, not raised."""

    def one(path: Path) -> AudioInfo | AudioError:
        try:
            return probe_audio(path)
        except AudioError as err:
            return err

    if workers <= 1 or len(files) < 2:
        return [one(p) for p in files]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, files))


def cached_scan(
    root: Path,
    kind: str,
    options: dict,
    files: Sequence[Path],
    scan: Callable[[], ScanResult],
    *,
    signature_files: Sequence[Path] = (),
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> ScanResult:
    """Reuse the manifest of ``root`` when its signature matches, else run ``scan`` and write it.

    The signature covers ``files`` and ``signature_files`` (e.g. transcripts). The first
    writable cache location wins; if none is writable the scan is still returned.
    """
    if not cache:
        return scan()
    signature = file_signature(root, sorted({*files, *signature_files}), kind, options)
    candidates = cache_candidates(root, kind, cache_dir)
    for path in candidates:
        hit = read_manifest(path, root, signature)
        if hit is not None:
            return hit
    result = scan()
    header = {"version": MANIFEST_VERSION, "kind": kind, "options": options, "signature": signature,
              "root": str(root.resolve()), "files": len(files)}
    for path in candidates:
        try:
            write_manifest(path, root, header, result)
            break
        except OSError:
            continue
    return result


def split_entries(
    entries: Sequence[Entry], valid_fraction: float = 0.05, by: str = "utterance", seed: int = 0
) -> tuple[list[Entry], list[Entry]]:
    """Deterministic train/valid split; both lists keep the input order.

    by="speaker": disjoint speaker sets; at least one valid speaker when ``valid_fraction > 0``
    and there are two or more speakers, and always at least one train speaker.
    by="utterance": each speaker keeps at least one utterance in train; about ``valid_fraction``
    of each speaker's utterances (stochastic rounding) go to valid, at least one overall.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"split_entries: valid_fraction={valid_fraction} must be in [0, 1)")
    if by == "speaker":
        valid_ids = _valid_by_speaker(entries, valid_fraction, seed)
    elif by == "utterance":
        valid_ids = _valid_by_utterance(entries, valid_fraction, seed)
    else:
        raise ValueError(f"split_entries: by={by!r} is not supported; use by='utterance' or by='speaker'")
    train = [e for i, e in enumerate(entries) if i not in valid_ids]
    valid = [e for i, e in enumerate(entries) if i in valid_ids]
    return train, valid


def unseen_speakers(entries: Sequence[Entry], count: int, seed: int = 0) -> list[str]:
    """``count`` whole speakers (sorted names) drawn by ``seed`` from those of ``entries``, to be kept out of a
    model's training and validation entirely; at least two speakers must remain."""
    speakers = sorted({e.speaker for e in entries})
    if count < 0 or (count and count > len(speakers) - 2):
        raise ValueError(f"unseen_speakers={count}: the corpus has {len(speakers)} speakers; hold out between 0 "
                         f"and {max(len(speakers) - 2, 0)} (at least two must remain for training)")
    order = derived_rng(seed, 0x0A5EE).permutation(len(speakers))
    return sorted(speakers[k] for k in order[:count])


def _by_speaker(entries: Sequence[Entry]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(e.speaker, []).append(i)
    return {spk: sorted(ids, key=lambda i: (entries[i].utterance, entries[i].path))
            for spk, ids in sorted(groups.items())}


def _valid_by_speaker(entries: Sequence[Entry], fraction: float, seed: int) -> set[int]:
    groups = _by_speaker(entries)
    speakers = list(groups)
    n_valid = int(round(fraction * len(speakers)))
    if fraction > 0 and len(speakers) >= 2:
        n_valid = min(max(n_valid, 1), len(speakers) - 1)
    order = derived_rng(seed, 0x5EA7).permutation(len(speakers))
    return {i for k in order[:n_valid] for i in groups[speakers[k]]}


def _valid_by_utterance(entries: Sequence[Entry], fraction: float, seed: int) -> set[int]:
    valid: set[int] = set()
    groups = _by_speaker(entries)
    for spk, ids in groups.items():
        rng = derived_rng(seed, zlib.crc32(spk.encode()))
        k = min(int(fraction * len(ids) + rng.random()), len(ids) - 1)
        valid.update(ids[j] for j in rng.permutation(len(ids))[:k])
    if fraction > 0 and not valid:
        spk, ids = max(groups.items(), key=lambda kv: (len(kv[1]), kv[0]))
        if len(ids) >= 2:
            valid.add(ids[int(derived_rng(seed, zlib.crc32(spk.encode())).integers(len(ids)))])
    return valid
