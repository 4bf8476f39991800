"""ctypes binding to ``libespeak-ng.so.1``: synthesize text and get exact phoneme and word timings.

espeak-ng reports a PHONEME event (type 7) with the exact start *sample* of each phoneme on the
same timeline as the audio it returns, so the alignments are exact by construction (no aligner).

The library is process-global: one ``espeak_Initialize`` per process, one synthesis callback,
one current voice. :class:`EspeakSynth` instances share that state behind a lock and re-select
their own voice/rate/pitch before every synthesis, so several instances can coexist.

Determinism: the output of espeak-ng depends on the history of the process (a pitch-flutter
phase and a noise generator carry over from one utterance to the next). The same sequence of
``synth`` calls in a fresh process gives bit-identical audio; to make a corpus reproducible,
synthesize each speaker's utterances in a fresh process, in a fixed order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

LIBRARY = "libespeak-ng.so.1"
SAMPLE_RATE = 22050  # espeak-ng's only output rate
INSTALL_HINT = "install it with `apt-get install espeak-ng` (Debian/Ubuntu)"

AUDIO_OUTPUT_SYNCHRONOUS = 2
OPTION_PHONEME_EVENTS = 0x1
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_PHONEME = 0, 1, 7
PARAM_RATE, PARAM_PITCH = 1, 3
#: espeak-ng mnemonics that are pauses or prosodic boundaries, not phones.
PAUSE_PHONEMES = frozenset({"_", "_:", "_!", ";"})
PHONEME_SEPARATOR = ord(" ") << 8  # espeak_TextToPhonemes phonememode: bits 8-23 = separator char
_WORD = re.compile(r"[\w'-]+")


class EspeakError(RuntimeError):
    """libespeak-ng is missing, failed to initialise, or rejected a voice or a text."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (40 bytes on x86-64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index into the text
        ("length", ctypes.c_int),  # word length in characters (WORD events)
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # exact start sample on the returned audio's timeline
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE``, used only for the SetVoiceByProperties fallback."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated name)* then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme: samples ``[start, end)`` at the synthesis rate; ``symbol`` is the espeak mnemonic."""

    start: int
    end: int
    symbol: str

    @property
    def is_pause(self) -> bool:
        return self.symbol in PAUSE_PHONEMES


@dataclass(frozen=True)
class WordEvent:
    """One spoken word: samples ``[start, end)``; ``text`` is ``source[char_start:char_start+len]``."""

    start: int
    end: int
    text: str
    char_start: int


class Synthesis(NamedTuple):
    """``wave`` is int16 of shape (T,) at 22,050 Hz; phonemes tile ``[0, T)``, words sit inside it."""

    wave: np.ndarray
    phonemes: list[PhonemeEvent]
    words: list[WordEvent]

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE


class _Library:
    """The one initialised libespeak-ng of this process, its callback and its capture buffers."""

    def __init__(self, data_path: str | None = None) -> None:
        self.lib = _load_library()
        self.data_path = data_path  # None: the system's espeak-ng-data
        self.lock = threading.RLock()
        self.chunks: list[bytes] = []
        self.events: list[tuple[int, int, int, int, str]] = []  # (type, sample, text_pos, length, phoneme)
        self.callback = _CALLBACK(self._on_synth)  # referenced here so ctypes never frees it
        self.current: tuple[str, int, int] | None = None
        self._declare_signatures()
        path = data_path.encode() if data_path is not None else None
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path, OPTION_PHONEME_EVENTS)
        if rate != SAMPLE_RATE:
            raise EspeakError(f"{LIBRARY}: espeak_Initialize returned {rate}, expected {SAMPLE_RATE} Hz")
        self.sample_rate = SAMPLE_RATE
        self.lib.espeak_SetSynthCallback(self.callback)

    def _declare_signatures(self) -> None:
        """Argument types of the functions used; restype stays ctypes' default, int, unless noted."""
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))

    def _on_synth(self, wav: ctypes.Array, n: int, events: ctypes.Array) -> int:
        if wav and n > 0:
            self.chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while events and events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            phoneme = ev.id.string.decode("ascii", "replace") if ev.type == EVENT_PHONEME else ""
            self.events.append((ev.type, ev.sample, ev.text_position, ev.length, phoneme))
            i += 1
        return 0  # 0 = continue synthesis

    def select(self, voice: str, rate: int, pitch: int) -> None:
        """Make ``voice`` at ``rate`` wpm and ``pitch`` (0-100) the current global settings."""
        if self.current == (voice, rate, pitch):
            return
        self.current = None
        self._set_voice(voice)
        for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch)):
            if self.lib.espeak_SetParameter(param, value, 0) != 0:
                raise EspeakError(f"{LIBRARY}: espeak_SetParameter({param}, {value}) failed")
        self.current = (voice, rate, pitch)

    def _set_voice(self, voice: str) -> None:
        """By name; else by the identifier of the voice that speaks the accent; else by properties.

        espeak-ng 1.51 finds "en-gb+f2" only through SetVoiceByProperties, which silently drops
        the "+f2" variant (the CLI too: every en-gb variant comes out at about 103 Hz). Resolving
        "en-gb" to its voice file "gmw/en" and loading "gmw/en+f2" by name keeps the variant.
        """
        if self.lib.espeak_SetVoiceByName(voice.encode()) == 0:
            return
        accent, _, variant = voice.partition("+")
        identifier = self.identifiers().get(accent.lower())
        if identifier and self.lib.espeak_SetVoiceByName(f"{identifier}+{variant}".rstrip("+").encode()) == 0:
            return
        name = ctypes.create_string_buffer(voice.encode())
        props = _Voice(languages=ctypes.cast(name, ctypes.c_void_p))  # what the espeak-ng CLI does
        if self.lib.espeak_SetVoiceByProperties(ctypes.byref(props)) != 0:
            raise EspeakError(
                f"{LIBRARY}: voice {voice!r} not found by name or language; "
                "list voices with `espeak-ng --voices=en` and variants with `espeak-ng --voices=variant`"
            )

    def identifiers(self) -> dict[str, str]:
        """Language code (lower case) -> identifier of the voice file that speaks it best."""
        best: dict[str, tuple[int, str]] = {}
        voices = self.lib.espeak_ListVoices(None)
        i = 0
        while voices and voices[i]:
            v = voices[i].contents
            for priority, lang in _languages(v.languages):
                if lang not in best or priority < best[lang][0]:
                    best[lang] = (priority, v.identifier.decode())
            i += 1
        return {lang: ident for lang, (_, ident) in best.items()}

    def run(self, text: str) -> tuple[np.ndarray, list[tuple[int, int, int, int, str]]]:
        """Synthesize ``text`` with the current settings; return (int16 wave (T,), raw events)."""
        self.chunks, self.events = [], []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None)
        if status != 0:
            raise EspeakError(f"{LIBRARY}: espeak_Synth failed with status {status} for text {text!r}")
        wave = np.frombuffer(b"".join(self.chunks), dtype=np.int16).copy()  # (T,)
        return wave, self.events


def _phoneme_count(lib: ctypes.CDLL, word: str) -> int:
    """Number of phonemes espeak-ng gives ``word`` alone (current voice), stress marks not counted."""
    buf = ctypes.create_string_buffer(word.encode("utf-8"))
    ptr = ctypes.c_void_p(ctypes.addressof(buf))
    tokens: list[str] = []
    while ptr.value:
        out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), 0, PHONEME_SEPARATOR)
        if out is None:
            break
        tokens += out.decode("ascii", "replace").split()
    return sum(1 for t in tokens if t.strip("',%=") and t not in PAUSE_PHONEMES)


def _languages(address: int | None) -> list[tuple[int, str]]:
    """Decode ``espeak_VOICE.languages``: (priority byte, NUL-terminated name) pairs, then a 0 byte."""
    out: list[tuple[int, str]] = []
    while address:
        priority = ctypes.string_at(address, 1)[0]
        if priority == 0:
            break
        name = ctypes.string_at(address + 1)  # up to the NUL
        out.append((priority, name.decode("ascii", "replace").lower()))
        address += len(name) + 2
    return out


def _load_library() -> ctypes.CDLL:
    candidates = [LIBRARY, ctypes.util.find_library("espeak-ng")]
    errors = []
    for name in filter(None, candidates):
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise EspeakError(f"{LIBRARY} could not be loaded ({'; '.join(errors) or 'not found'}); {INSTALL_HINT}")


_STATE: _Library | None = None
_STATE_LOCK = threading.Lock()
_DATA_PATH: str | None = None  # set by use_data() before the first use


def _library() -> _Library:
    """The process-wide library, initialised on first use (never twice)."""
    global _STATE
    with _STATE_LOCK:
        if _STATE is None:
            _STATE = _Library(_DATA_PATH)
        return _STATE


def use_data(path: str | Path) -> None:
    """Make this process's libespeak-ng read its voices and variants from ``path`` (a folder that holds an
    ``espeak-ng-data`` folder, or that folder itself), e.g. a copy with generated variants added
    (``data_scripts/timbres.py``). Only before the library's first use in the process: it is initialised once."""
    global _DATA_PATH
    path = str(path)
    with _STATE_LOCK:
        if _STATE is not None and _STATE.data_path != path:
            raise EspeakError(f"{LIBRARY} is already initialised with data {_STATE.data_path or 'of the system'}; "
                              f"call use_data({path!r}) before the first synthesis in this process")
        _DATA_PATH = path


def data_folder() -> Path:
    """The ``espeak-ng-data`` folder the library of this process reads."""
    where = ctypes.c_char_p()
    _library().lib.espeak_Info(ctypes.byref(where))
    if not where.value:
        raise EspeakError(f"{LIBRARY}: espeak_Info gave no data path")
    return Path(where.value.decode())


def espeak_available() -> tuple[bool, str]:
    """(True, "") if libespeak-ng loads and initialises here, else (False, reason)."""
    try:
        _library()
    except EspeakError as exc:
        return False, str(exc)
    return True, ""


def espeak_version() -> str:
    """The version string of the loaded libespeak-ng, e.g. ``"1.51"``."""
    return (_library().lib.espeak_Info(None) or b"unknown").decode()


def phoneme_timeline(raw: list[tuple[int, int, int, int, str]], n_samples: int) -> list[PhonemeEvent]:
    """Turn raw PHONEME events into contiguous intervals tiling ``[0, n_samples)``.

    A phoneme ends where the next one starts; the last ends at ``n_samples``. Zero-length
    phonemes (e.g. the final ``_`` that lands on ``n_samples``) are dropped, and audio before
    the first event becomes a leading ``_`` pause.
    """
    starts = [(min(max(s, 0), n_samples), sym) for typ, s, _, _, sym in raw if typ == EVENT_PHONEME]
    if starts and starts[0][0] > 0:
        starts.insert(0, (0, "_"))
    bounds = [s for s, _ in starts[1:]] + [n_samples]
    return [PhonemeEvent(s, e, sym) for (s, sym), e in zip(starts, bounds, strict=True) if e > s]


def _word_groups(raw: list[tuple[int, int, int, int, str]]) -> list[tuple[int, int, list[int]]]:
    """(0-based char start, length, indices of the PHONEME events after it) for each WORD event."""
    groups: list[tuple[int, int, list[int]]] = []
    k = 0  # index of the next PHONEME event
    for typ, _, pos, length, _sym in raw:
        if typ == EVENT_WORD and pos >= 1 and length > 0:  # espeak also sends empty ones at clause ends
            groups.append((pos - 1, length, []))
        elif typ == EVENT_PHONEME:
            if groups:
                groups[-1][2].append(k)
            k += 1
    return groups


def word_timeline(
    raw: list[tuple[int, int, int, int, str]],
    n_samples: int,
    text: str,
    phoneme_count: Callable[[str], int] | None = None,
) -> list[WordEvent]:
    """Words from WORD events. A word owns the phonemes emitted after its WORD event and before
    the next one; it spans from its first to the end of its last non-pause phoneme, so it ends
    where the next word starts or where a pause starts. Words with no phoneme are dropped.

    espeak-ng reads some word pairs as one dictionary entry ("in the", "on the") and sends one
    WORD event for both. Such a group is split between its words by their phoneme counts
    (``phoneme_count(word)``) when those add up; otherwise it stays one interval, "in the".
    """
    phones = [(min(max(s, 0), n_samples), sym) for typ, s, _, _, sym in raw if typ == EVENT_PHONEME]
    ends = [s for s, _ in phones[1:]] + [n_samples]
    groups = _word_groups(raw)
    words = []
    for g, (char_start, length, indices) in enumerate(groups):
        spoken = [i for i in indices if phones[i][1] not in PAUSE_PHONEMES]
        if not spoken or ends[spoken[-1]] <= phones[spoken[0]][0]:
            continue
        next_start = groups[g + 1][0] if g + 1 < len(groups) else len(text)
        pieces = _split_group(
            text[char_start:next_start], text[char_start : char_start + length], spoken, phoneme_count
        )
        offset = char_start
        for word, chunk in pieces:
            offset = max(text.find(word, offset), char_start)
            words.append(WordEvent(phones[chunk[0]][0], ends[chunk[-1]], word.strip(), offset))
    return words


def _split_group(
    span: str, word: str, spoken: list[int], phoneme_count: Callable[[str], int] | None
) -> list[tuple[str, list[int]]]:
    """[(word, its phoneme indices)] for the text ``span`` up to the next WORD event."""
    names = _WORD.findall(span)
    if len(names) < 2 or not span.startswith(word):
        return [(word, spoken)]
    counts = [phoneme_count(n) for n in names] if phoneme_count else []
    if sum(counts) != len(spoken) or min(counts, default=0) < 1:
        return [(" ".join(names), spoken)]
    bounds = np.cumsum([0, *counts]).tolist()
    return [(n, spoken[a:b]) for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)]


class EspeakSynth:
    """One espeak-ng voice at a fixed speaking rate and pitch.

    Args:
        voice: accent+variant name, e.g. ``"en-us+m3"`` or ``"en-gb-scotland+f2"``.
        rate: speaking rate in words per minute (espeak default 175; 80-450).
        pitch: base pitch 0-100 (espeak default 50).
    """

    def __init__(self, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> None:
        if not 80 <= rate <= 450:
            raise ValueError(f"rate={rate} wpm is outside espeak-ng's 80-450 range")
        if not 0 <= pitch <= 100:
            raise ValueError(f"pitch={pitch} is outside espeak-ng's 0-100 range")
        self.voice, self.rate, self.pitch = voice, int(rate), int(pitch)
        self._lib = _library()
        with self._lib.lock:
            self._lib.select(self.voice, self.rate, self.pitch)  # fail early on a bad voice

    @property
    def sample_rate(self) -> int:
        return self._lib.sample_rate

    def synth(self, text: str) -> Synthesis:
        """Synthesize ``text``; returns wave (int16 (T,)), phonemes tiling [0, T) and words."""
        if not text.strip():
            raise ValueError("synth(text): text is empty; pass at least one word")
        with self._lib.lock:
            self._lib.select(self.voice, self.rate, self.pitch)
            wave, raw = self._lib.run(text)
            if wave.size == 0:
                raise EspeakError(f"{LIBRARY}: no audio for text {text!r} with voice {self.voice!r}")
            words = word_timeline(raw, wave.size, text, lambda w: _phoneme_count(self._lib.lib, w))
        return Synthesis(wave, phoneme_timeline(raw, wave.size), words)
