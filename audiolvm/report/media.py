"""Files on the page: embedded as base64 data URIs (one self-contained HTML file), or linked relative to the page.

Audio is embedded losslessly by default: a 16- or 24-bit PCM WAV (what ``save_audio`` writes) is re-encoded to FLAC
in memory (about half the size, the same samples), any other audio file as it is. ``opus`` re-encodes every file to
Ogg Opus instead: a page about a quarter as large, but lossy (judge fine artefacts with FLAC). Chromium and Firefox
play all three."""

from __future__ import annotations

import base64
import io
import mimetypes
import os
from pathlib import Path
from urllib.parse import quote

import soundfile as sf

from audiolvm.core.audio import audio_info
from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.report.page import Media

AUDIO_MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
LOSSLESS_TO_FLAC = ("PCM_16", "PCM_24")  # WAV subtypes FLAC holds exactly
CODECS = ("flac", "opus")  #: how audio is embedded (see the module docstring)


def audio_bytes(path: Path, codec: str = "flac") -> tuple[bytes, str]:
    """``(bytes, MIME type)`` of ``path`` as the page embeds it with ``codec``: ``flac``, FLAC for a PCM WAV (the
    same samples) and the file's own bytes otherwise; ``opus``, Ogg Opus."""
    if codec not in CODECS:
        raise UsageError(f"audio codec {codec!r}: choose one of {', '.join(CODECS)}")
    info = sf.info(str(path))
    if codec == "opus" or (info.format == "WAV" and info.subtype in LOSSLESS_TO_FLAC):
        data, rate = sf.read(str(path), dtype="float32" if codec == "opus" else "int32", always_2d=True)
        buf = io.BytesIO()
        if codec == "opus":
            sf.write(buf, data, rate, format="OGG", subtype="OPUS")
        else:
            sf.write(buf, data, rate, format="FLAC", subtype=info.subtype)
        return buf.getvalue(), "audio/ogg" if codec == "opus" else "audio/flac"
    return path.read_bytes(), AUDIO_MIME.get(path.suffix.lower(), "application/octet-stream")


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a base64 ``data:`` URI (what :func:`data_uri` wrote)."""
    head, _, payload = uri.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError(f"not a base64 data URI: {uri[:40]!r}")
    return base64.b64decode(payload)


class MediaFiles:
    """Makes :class:`Media` for a page written to ``page``: embedded (audio as ``codec``), or with ``link`` a URL
    relative to the page's folder (the files must then stay where they are, beside the page)."""

    def __init__(self, page: Path, link: bool = False, codec: str = "flac") -> None:
        if codec not in CODECS:
            raise UsageError(f"audio codec {codec!r}: choose one of {', '.join(CODECS)}")
        self.folder, self.link, self.codec = Path(page).resolve().parent, link, codec

    def _src(self, path: Path, data: bytes | None, mime: str) -> str:
        if self.link:
            return quote(Path(os.path.relpath(path.resolve(), self.folder)).as_posix())
        return data_uri(path.read_bytes() if data is None else data, mime)

    def image(self, path: Path, label: str = "") -> Media:
        if not path.is_file():
            raise MissingFileError(f"{path}: no such image")
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        return Media(path, self._src(path, None, mime), label or path.stem, mime)

    def audio(self, path: Path, label: str = "") -> Media:
        """An audio file and its duration (header only; a file soundfile cannot read raises AudioError)."""
        duration = audio_info(path).duration
        if self.link:
            data, mime = None, AUDIO_MIME.get(path.suffix.lower(), "application/octet-stream")
        else:
            data, mime = audio_bytes(path, self.codec)
        return Media(path, self._src(path, data, mime), label or path.stem, mime, duration)

