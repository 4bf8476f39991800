"""Bach chorales from music21's bundled corpus, with a General MIDI ensemble per chorale, as MIDI.

music21 exports every part as a piano; here each part gets a GM program from the chorale's
*ensemble* (strings, brass, choir, ...), chosen by register (highest part -> first slot), so the
rendered corpus has timbre diversity. music21 puts parts that share a program on one MIDI channel
(unisons would then cut each other off), so the score is exported with a distinct placeholder
program per part and the programs are rewritten afterwards with ``mido``: one channel per part
(music21 uses 14 channels, so bwv190.7, with 15 parts, shares one).

music21 and mido are imported lazily; :func:`require_music21` names the package to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: General MIDI program (0-based) -> instrument name, for every program an ensemble uses
GM_NAMES: dict[int, str] = {
    0: "Acoustic Grand Piano", 6: "Harpsichord", 19: "Church Organ", 20: "Reed Organ",
    24: "Acoustic Guitar (nylon)", 25: "Acoustic Guitar (steel)", 32: "Acoustic Bass",
    40: "Violin", 41: "Viola", 42: "Cello", 43: "Contrabass", 52: "Choir Aahs", 53: "Voice Oohs",
    56: "Trumpet", 57: "Trombone", 58: "Tuba", 60: "French Horn", 68: "Oboe", 70: "Bassoon",
    71: "Clarinet", 73: "Flute",
}  # fmt: skip
#: ensemble -> GM programs from the highest register slot to the lowest; neighbours always differ
ENSEMBLES: dict[str, tuple[int, int, int, int]] = {
    "strings": (40, 41, 42, 43),
    "brass": (56, 60, 57, 58),
    "woodwinds": (73, 68, 71, 70),
    "choir": (53, 52, 53, 52),
    "organ": (19, 20, 19, 20),
    "keyboard": (6, 0, 6, 0),
    "guitar": (24, 25, 24, 32),
}
MIXED = "mixed"  # each part drawn from every ensemble's program for its slot
ENSEMBLE_NAMES: tuple[str, ...] = (*ENSEMBLES, MIXED)
MUSIC_EXTRA = "pip install -e '.[music]' (or: pip install music21 mido)"


def require_music21() -> tuple[Any, Any]:
    """``(music21, mido)``, or an ImportError that names the packages to install."""
    try:
        return importlib.import_module("music21"), importlib.import_module("mido")
    except ImportError as exc:
        raise ImportError(f"the music corpus needs music21 and mido ({exc}); {MUSIC_EXTRA}") from exc


@dataclass(frozen=True)
class Chorale:
    """One chorale of the music21 corpus: ``source`` is its corpus path (e.g. ``bach/bwv269``)."""

    track_id: str
    source: str
    number: int  # Riemenschneider number
    bwv: str
    title: str


def list_chorales() -> tuple[list[Chorale], list[int]]:
    """The chorales of ``music21.corpus.chorales.Iterator()`` in Riemenschneider order, each file once.

    Returns ``(chorales, duplicates)``: the Riemenschneider numbers that point at a file already
    listed (the numbering has 371 entries for 349 distinct files) are left out and returned.
    """
    music21, _ = require_music21()
    chorales_mod = music21.corpus.chorales
    numbers = chorales_mod.Iterator(returnType="filename").numberList
    table = chorales_mod.ChoraleListRKBWV().byRiemenschneider
    chorales: list[Chorale] = []
    seen: set[str] = set()
    duplicates: list[int] = []
    for number in numbers:
        row = table[number]
        source = f"bach/bwv{row['bwv']}"  # exactly what Iterator() parses
        if source in seen:
            duplicates.append(number)
            continue
        seen.add(source)
        chorales.append(Chorale(source.split("/")[-1], source, number, str(row["bwv"]), str(row["title"])))
    return chorales, duplicates


def choose_programs(ensemble: str, registers: list[float], rng: np.random.Generator) -> list[int]:
    """A GM program per part: parts ranked by mean pitch (high first) fill the ensemble's 4 slots.

    ``mixed`` draws each part's program among every ensemble's program for that slot, never the
    program of the part just above it. Any ensemble gives at least two programs to 2+ parts.
    """
    if ensemble not in ENSEMBLE_NAMES:
        raise ValueError(f"ensemble {ensemble!r} is unknown; choose one of {', '.join(ENSEMBLE_NAMES)}")
    order = np.argsort(-np.asarray(registers, dtype=float), kind="stable")  # high to low
    slots = np.empty(len(registers), dtype=int)
    slots[order] = np.minimum(np.arange(len(registers)) * 4 // max(len(registers), 1), 3)
    if len(registers) > 1:
        slots[order[-1]] = 3  # the lowest part is always the bass slot
    programs = [0] * len(registers)
    previous = -1
    for part in order:
        if ensemble == MIXED:
            pool = sorted({slot_programs[slots[part]] for slot_programs in ENSEMBLES.values()} - {previous})
            programs[part] = int(pool[int(rng.integers(len(pool)))])
        else:
            programs[part] = ENSEMBLES[ensemble][slots[part]]
        previous = programs[part]
    return programs


def part_names(score: Any) -> list[str]:
    """Each part's name (``Part <k>`` when music21 has none), made unique with ``#2``, ``#3``..."""
    names: list[str] = []
    for k, part in enumerate(score.parts, start=1):
        name = (part.partName or "").strip() or f"Part {k}"
        base, n = name, 1
        while name in names:
            n += 1
            name = f"{base} #{n}"
        names.append(name)
    return names


def registers(score: Any) -> list[float]:
    """Mean MIDI pitch of each part's notes (chords count every pitch; 60 for a part without notes)."""
    out = []
    for part in score.parts:
        pitches = [p.midi for n in part.recurse().notes for p in getattr(n, "pitches", ())]
        out.append(float(np.mean(pitches)) if pitches else 60.0)
    return out


def export_midi(score: Any, programs: list[int], path: Path) -> list[int]:
    """Write ``score`` as a MIDI file at ``path`` with one channel and GM program per part.

    Returns the programs written. music21 uses 14 channels for parts, so with 15+ parts a channel
    is shared, and a part on a shared channel takes the program of the first part there.
    Raises ValueError if music21 did not give each part one track on one channel.
    """
    music21, mido = require_music21()
    for k, part in enumerate(score.parts):
        for old in list(part.recurse().getElementsByClass(music21.instrument.Instrument)):
            old.activeSite.remove(old)
        placeholder = music21.instrument.Instrument()
        placeholder.midiProgram = k % 128  # distinct, so music21 gives each part its own channel
        part.insert(0, placeholder)
    score.write("midi", fp=str(path))
    midi = mido.MidiFile(str(path))
    tracks = midi.tracks[1:]  # track 0 is music21's conductor track (tempo, time signature)
    channels = [{m.channel for m in t if m.type == "note_on"} for t in tracks]
    if len(tracks) != len(programs) or any(len(cs) > 1 for cs in channels):
        raise ValueError(f"{path}: music21 wrote {len(tracks)} part tracks on channels {channels} for "
                         f"{len(programs)} parts; expected one track and channel per part")  # fmt: skip
    owner: dict[int, int] = {}  # channel -> program of the first part on it
    written = [owner.setdefault(next(iter(cs)), p) if cs else p for cs, p in zip(channels, programs, strict=True)]
    for track, program in zip(tracks, written, strict=True):
        for k, msg in enumerate(track):
            if msg.type == "program_change":
                track[k] = msg.copy(program=program)
        track[:] = close_notes(list(track))
    midi.save(str(path))
    return written


def _is_note_off(msg: Any) -> bool:
    return msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)


def close_notes(track: list[Any]) -> list[Any]:
    """A MIDI track (mido messages, delta times) without stuck notes.

    music21 writes some zero-length notes (repeat expansion, ties) as note_off *before* note_on
    at the same tick: the note then never ends, and fluidsynth renders forever with a sustained
    instrument. Such pairs are dropped, and every channel of the track gets "all notes off"
    (CC 123) just before its end, so no note can ring past the end of the track.
    """
    timed, tick = [], 0
    for msg in track:
        tick += msg.time
        timed.append((tick, msg))
    active: set[tuple[int, int]] = set()
    orphan_off: dict[tuple[int, int], int] = {}  # (channel, note) -> tick of a note_off with no note on
    kept = []
    for tick, msg in timed:
        if msg.type in ("note_on", "note_off"):
            key = (msg.channel, msg.note)
            if _is_note_off(msg) and key not in active:
                orphan_off[key] = tick
                continue
            if not _is_note_off(msg) and orphan_off.pop(key, None) == tick:
                continue  # the note_on of a zero-length note whose note_off came first
            (active.discard if _is_note_off(msg) else active.add)(key)
        kept.append((tick, msg))
    end = kept[-1][0] if kept else 0
    channels = sorted({m.channel for _, m in kept if m.type == "note_on"})
    all_off = [(end, _all_notes_off(c)) for c in channels]
    if kept and kept[-1][1].type == "end_of_track":
        kept = kept[:-1] + all_off + kept[-1:]
    else:
        kept += all_off
    return [msg.copy(time=tick - prev) for (tick, msg), prev in zip(kept, [0] + [t for t, _ in kept[:-1]], strict=True)]


def _all_notes_off(channel: int) -> Any:
    _, mido = require_music21()
    return mido.Message("control_change", channel=channel, control=123, value=0)


def midi_seconds(path: Path) -> float:
    """Duration of a MIDI file in seconds (tempo changes included), as ``mido`` computes it."""
    _, mido = require_music21()
    return float(mido.MidiFile(str(path)).length)


def score_key(score: Any) -> str:
    """The key music21's analysis finds, e.g. ``G major``, ``Bb minor``; "" if the analysis fails."""
    try:
        key = score.analyze("key")
    except Exception:  # music21 analysis may raise on odd scores; the key is informative only
        return ""
    return f"{key.tonic.name.replace('-', 'b')} {key.mode}"  # music21 spells flats "B-"
