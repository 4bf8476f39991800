"""F0 tracks of a corpus as data: extracted once per utterance, cached beside the manifest, cropped with the audio.

:meth:`PitchTable.build` runs the extractor (:func:`audiolvm.core.pitch.extract_pitch`) over the entries
that the cache does not hold yet, with a progress bar, and rewrites the cache atomically. The cache is one
``.npz`` (no pickles) per corpus and extractor setting, ``<root>/.audiolvm_pitch.<settings key>.npz`` (or
under ``$XDG_CACHE_HOME/audiolvm`` for a read-only corpus); each track is keyed like the manifest, by the
file's relative path, size and modification time, so an edited file is extracted again. Training reads
only the table, in any worker, so data loading stays deterministic and never calls the extractor.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from audiolvm.core import pitch as pitch_lib
from audiolvm.core.audio import AudioError
from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_bytes
from audiolvm.core.pitch import ALL_SPEAKERS as GLOBAL
from audiolvm.core.pitch import PitchSettings, continuous_f0
from audiolvm.data.entry import Entry
from audiolvm.data.readers.base import CorpusReader

LOG = logging.getLogger("audiolvm.data")


def entry_key(entry: Entry) -> str:
    """Stable key of an entry's audio: path, size and mtime (as the manifest), frames and rate."""
    try:
        st = os.stat(entry.path)
        stamp = f"{st.st_size}\0{st.st_mtime_ns}"
    except OSError:  # a virtual path (e.g. an HF dataset row)
        stamp = ""
    raw = f"{entry.path}\0{stamp}\0{entry.frames}\0{entry.sample_rate}"
    return hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()


def cache_locations(root: str | Path, name: str) -> list[Path]:
    """Where a corpus's derived file ``name`` may live, in order of preference: the corpus folder, then the user
    cache (``$XDG_CACHE_HOME/audiolvm``, the name prefixed by a digest of the corpus path) for a read-only corpus."""
    root = Path(root)
    digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [root / name, Path(xdg) / "audiolvm" / f"{digest}{name}"]


def cache_paths(root: str | Path, settings: PitchSettings) -> list[Path]:
    """Where a corpus's F0 cache may live, in order of preference (the corpus folder, then the user cache)."""
    return cache_locations(root, f".audiolvm_pitch.{settings.key()}.npz")


def _read_npz(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The tracks stored at ``path`` ({} if it is missing or unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, offsets, f0, voiced = z["keys"], z["offsets"], z["f0"], z["voiced"]
    except (OSError, ValueError, KeyError) as exc:
        if path.exists():
            LOG.warning("%s: unreadable F0 cache (%s); extracting again", path, exc)
        return {}
    spans = zip(keys, offsets[:-1], offsets[1:], strict=True)
    return {str(k): (f0[a:b], voiced[a:b].astype(bool)) for k, a, b in spans}


def _write_npz(path: Path, tracks: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    keys = sorted(tracks)
    lengths = [len(tracks[k][0]) for k in keys]
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(keys, dtype="U40"), offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
             f0=np.concatenate([tracks[k][0] for k in keys] or [np.zeros(0)]).astype(np.float32),
             voiced=np.concatenate([tracks[k][1] for k in keys] or [np.zeros(0)]).astype(np.uint8))
    atomic_write_bytes(path, buf.getvalue())


class PitchTable:
    """F0 and voicing per entry (keyed by :func:`entry_key`), at ``settings.hop`` samples per frame."""

    def __init__(self, tracks: dict[str, tuple[np.ndarray, np.ndarray]], settings: PitchSettings) -> None:
        self.tracks, self.settings = tracks, settings

    @classmethod
    def build(cls, reader: CorpusReader, entries: Sequence[Entry], settings: PitchSettings,
              root: str | Path | None = None, progress: bool = True) -> PitchTable:
        """Tracks of ``entries``: read from the cache of ``root`` where present, extracted (and the cache
        rewritten) where not. Files that fail to decode are skipped through ``reader.skip``."""
        paths = cache_paths(root, settings) if root is not None else []
        tracks = next((t for t in map(_read_npz, paths) if t), {})
        todo = [e for e in entries if entry_key(e) not in tracks]
        for entry in tqdm(todo, desc="extracting F0", disable=not progress or not todo, dynamic_ncols=True):
            try:
                wave = reader.load(entry, settings.sample_rate)
            except AudioError as exc:
                reader.skip(entry.path, exc.reason)
                continue
            tracks[entry_key(entry)] = pitch_lib.extract_pitch(wave, settings)
        if todo:
            for path in paths:
                try:
                    _write_npz(path, tracks)
                    LOG.info("F0 of %d utterances extracted; cache %s", len(todo), path)
                    break
                except OSError:
                    continue
        return cls(tracks, settings)

    def track(self, entry: Entry) -> tuple[np.ndarray, np.ndarray]:
        """``(f0 (N,), voiced (N,))`` of the whole utterance; AudioError if it has none (it failed to decode)."""
        hit = self.tracks.get(entry_key(entry))
        if hit is None:
            raise AudioError(entry.path, "no F0 track (the file failed to decode when F0 was extracted)")
        return hit

    def crop(self, entry: Entry, offset: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """F0 frames of the crop ``[offset, offset + length)`` (samples at ``settings.sample_rate``):
        ``(f0 float32 (n,), continuous through unvoiced frames; voiced float32 (n,))``, ``n = length // hop + 1``,
        frame ``k`` at sample ``offset + k * hop`` (linear interpolation; past the end: unvoiced)."""
        f0, voiced = self.track(entry)
        hop = self.settings.hop
        full = continuous_f0(f0, voiced)  # (N,)
        pos = offset / hop + np.arange(length // hop + 1)  # (n,) fractional frame positions
        f = np.interp(pos, np.arange(len(f0)), full)
        v = np.interp(pos, np.arange(len(f0)), voiced.astype(np.float64), right=0.0) >= 0.5
        return f.astype(np.float32), v.astype(np.float32)

    def speaker_stats(self, entries: Sequence[Entry]) -> dict[str, list[float]]:
        """``{speaker: [mean, std]}`` of ln F0 over the voiced frames of each speaker's ``entries``, and
        :data:`GLOBAL` over all of them. A speaker with no voiced frame is an error naming it."""
        by: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for e in entries:
            if entry_key(e) in self.tracks:
                by.setdefault(e.speaker, []).append(self.tracks[entry_key(e)])
        stats = {}
        for name, tracks in sorted([*by.items(), (GLOBAL, [t for ts in by.values() for t in ts])]):
            f0 = np.concatenate([t[0] for t in tracks])
            voiced = np.concatenate([t[1] for t in tracks])
            try:
                mean, std = pitch_lib.log_f0_stats(f0, voiced)
            except ValueError as exc:
                raise UsageError(f"speaker {name!r}: {exc}; a pitch-aware decoder (model.pitch.levels) needs voiced "
                                 "speech from every training speaker") from exc
            stats[name] = [round(float(mean), 6), round(float(std), 6)]
        return stats
