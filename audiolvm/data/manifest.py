"""The manifest cache: one scan of a corpus folder, kept as JSON lines and reused while its files are unchanged.

A scan walks the corpus, probes every audio file's header and decodes it once, streaming
(:func:`~audiolvm.core.audio.probe_audio`: NaN/Inf, silence, a body that fails to decode), and writes the result
as JSON lines: a header line with a signature of the file list (relative paths, sizes, mtimes) and the reader's
kind and options, then one line per file, either an entry or ``{"path": ..., "error": reason}``. The next scan
with the same signature reads the file back instead of probing again, so a 44-hour corpus is probed once. Bad
files stay in the manifest and are not re-probed until the file list changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from audiolvm.core.audio import AudioError, AudioInfo, probe_audio
from audiolvm.data.entry import Entry

MANIFEST_VERSION = 2  # 2: every file is decoded once at scan time, silent files are skipped


@dataclass
class ScanResult:
    """Entries that probed fine and ``(path, reason)`` for the files that did not."""

    entries: list[Entry]
    bad: list[tuple[str, str]]
    from_cache: bool = False


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
