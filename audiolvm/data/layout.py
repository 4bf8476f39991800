"""The shape of a corpus folder: the audio suffixes, finding its audio files, and the checks every folder reader
makes before a scan. A reader's own layout test is its ``matches(root)`` (in :mod:`audiolvm.data.readers`, whose
``READERS`` asks them in turn); the generic parts live here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from audiolvm.data.entry import CorpusError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".w64")


def require_dir(root: str | Path) -> Path:
    """``root`` as a Path; CorpusError if it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder (field root); pass --data to an existing corpus folder")
    return root


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


def unusable_name(path: Path) -> str | None:
    """Why ``path`` cannot be scanned before it is even opened (None if it can): a name that is not valid
    UTF-8 (it cannot be written to the manifest) or a symbolic link whose target is missing."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (rename the file)"
    if not path.exists():
        return "dangling link (its target is missing)" if path.is_symlink() else "vanished during the scan"
    return None

