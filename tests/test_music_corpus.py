"""The rendered music corpus (Bach chorales via music21 + fluidsynth) and the music / folder readers."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolvm.data import CorpusError, FolderReader, MusicCorpusReader, detect_kind, open_corpus
from data_scripts import chorales as ch
from data_scripts import synth
from data_scripts.make_music_corpus import COLUMNS, MusicOptions, generate_music_corpus, plan_jobs
from tests.fixtures_audio import write

PY_MISSING = [f"{name} (pip install -e '.[music]')" for name in ("music21", "mido")
              if importlib.util.find_spec(name) is None]  # fmt: skip
MISSING = list(PY_MISSING)
if shutil.which("fluidsynth") is None:
    MISSING.append("the fluidsynth program (apt-get install fluidsynth)")
try:
    SOUNDFONT: Path | None = synth.find_soundfont()
except FileNotFoundError:
    SOUNDFONT = None
    MISSING.append("a General MIDI soundfont (apt-get install timgm6mb-soundfont)")
WHY = f"rendering the music corpus needs {', '.join(MISSING)}"
needs_music = pytest.mark.skipif(bool(MISSING), reason=WHY)
needs_music21 = pytest.mark.skipif(bool(PY_MISSING), reason=f"needs {', '.join(PY_MISSING)}")
SHORT = "bwv281"  # one of the shortest chorales: 16 s of music


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two chorales cropped to 3 s (the first two of the seed-0 plan)."""
    if MISSING:
        pytest.skip(WHY)
    out = tmp_path_factory.mktemp("music")
    options = MusicOptions(max_seconds=3.0, bits=12)
    return out, generate_music_corpus(out, n=2, rate=16000, seed=0, soundfont=SOUNDFONT, options=options)


def _rows(out: Path) -> list[dict]:
    with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _midi_programs(path: Path) -> list[int]:
    """Program of each part track of a MIDI file, read back with mido."""
    import mido

    tracks = mido.MidiFile(str(path)).tracks[1:]
    return [next(m.program for m in t if m.type == "program_change") for t in tracks]


@needs_music
def test_layout_and_metadata(corpus: tuple[Path, dict]) -> None:
    out, summary = corpus
    rows = _rows(out)
    assert tuple(rows[0]) == COLUMNS and summary["tracks"] == len(rows) == 2
    for row in rows:
        info = sf.info(str(out / "audio" / f"{row['track_id']}.flac"))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(info.frames / 16000 - float(row["duration_s"])) < 1e-3
        assert 2.9 < float(row["duration_s"]) <= 3.0 < float(row["midi_duration_s"])  # cropped to 3 s
        assert row["soundfont"] == SOUNDFONT.name and row["key"] and row["title"]
        assert row["track_id"] == f"bwv{row['bwv']}" and (out / "midi" / f"{row['track_id']}.mid").is_file()
    assert json.loads((out / "corpus.json").read_text())["seed"] == 0
    assert "--max-seconds 3.0" in (out / "README.md").read_text()


@needs_music
def test_programs_differ_between_parts_and_are_in_the_midi(corpus: tuple[Path, dict]) -> None:
    out, _ = corpus
    for row in _rows(out):
        programs = [p for p, _name in json.loads(row["programs"]).values()]
        assert len(programs) >= 4 and len(set(programs)) >= 2, row  # timbre diversity inside a track
        assert set(programs) <= set(ch.ENSEMBLES.get(row["ensemble"], ch.GM_NAMES))
        assert _midi_programs(out / "midi" / f"{row['track_id']}.mid") == programs


@needs_music
def test_same_seed_same_corpus(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = corpus
    row = _rows(out)[0]
    again = generate_music_corpus(tmp_path, 0, 16000, 0, SOUNDFONT, MusicOptions(max_seconds=3.0, bits=12),
                                  tracks=[row["track_id"]])  # fmt: skip
    assert again["tracks"] == 1 and _rows(tmp_path)[0] == row
    name = f"audio/{row['track_id']}.flac"
    assert np.array_equal(sf.read(str(out / name))[0], sf.read(str(tmp_path / name))[0])


@needs_music21
def test_plan_and_programs_follow_the_seed() -> None:
    chorales, duplicates = ch.list_chorales()
    assert len(chorales) > 300 and len({c.track_id for c in chorales}) == len(chorales) and duplicates
    first, second, other = plan_jobs(chorales, 0), plan_jobs(chorales, 0), plan_jobs(chorales, 1)
    assert first == second and first != other
    assert {j.ensemble for j in first[: len(ch.ENSEMBLE_NAMES)]} == set(ch.ENSEMBLE_NAMES)  # balanced prefix
    registers = [72.0, 66.0, 60.0, 48.0]
    draw = [ch.choose_programs("mixed", registers, np.random.default_rng(s)) for s in (0, 0, 1, 2, 3)]
    assert draw[0] == draw[1] and len({tuple(d) for d in draw}) > 1
    assert ch.choose_programs("strings", registers[::-1], np.random.default_rng(0)) == [43, 42, 41, 40]


@needs_music21
def test_close_notes_drops_zero_length_notes_and_ends_every_note() -> None:
    """music21 writes some zero-length notes as note_off *before* note_on; fluidsynth then never stops."""
    import mido

    events = [("note_on", 60, 0), ("note_off", 60, 480), ("note_off", 62, 0), ("note_on", 62, 0),
              ("note_on", 64, 0), ("note_off", 64, 480)]  # (type, note, delta ticks); 62 has zero length
    track = [mido.Message(kind, note=note, velocity=90 if kind == "note_on" else 0, time=dt)
             for kind, note, dt in events] + [mido.MetaMessage("end_of_track", time=240)]  # fmt: skip
    fixed = ch.close_notes(track)
    timed = list(zip(np.cumsum([m.time for m in fixed]).tolist(), fixed, strict=True))
    notes = [(t, m.type, m.note) for t, m in timed if m.type.startswith("note")]
    assert notes == [(0, "note_on", 60), (480, "note_off", 60), (480, "note_on", 64), (960, "note_off", 64)]
    assert [(t, m.type, getattr(m, "control", None)) for t, m in timed[-2:]] == [
        (1200, "control_change", 123),  # all notes off, at the end of the track
        (1200, "end_of_track", None),
    ]


@needs_music
def test_uncropped_duration_matches_the_midi(tmp_path: Path) -> None:
    import mido
    from music21 import corpus as m21corpus

    summary = generate_music_corpus(tmp_path, tracks=[SHORT], soundfont=SOUNDFONT)
    assert summary["tracks"] == 1 and not summary["failed"]
    wave, rate = sf.read(str(tmp_path / "audio" / f"{SHORT}.flac"))
    midi = mido.MidiFile(str(tmp_path / "midi" / f"{SHORT}.mid"))
    notes_end = m21corpus.parse(f"bach/{SHORT}").expandRepeats().highestTime * 60 / 120  # no tempo mark: 120
    assert 0 <= midi.length - notes_end <= 0.51  # music21 ends the MIDI one beat after the last note
    assert 0 <= wave.size / rate - midi.length <= 1.0  # plus at most 1 s of release
    loud = np.nonzero(np.abs(wave) > 1e-2)[0] / rate
    assert loud[0] < 0.05 and notes_end - 0.5 < loud[-1] < midi.length + 1.0  # sound spans the notes


@needs_music
def test_reader_reads_the_corpus_and_skips_a_corrupt_file(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(corpus[0], root)
    rows = {r["track_id"]: r for r in _rows(root)}
    reader = open_corpus(root)
    assert isinstance(reader, MusicCorpusReader) and detect_kind(root) == "music"
    entries = reader.entries()
    assert {e.utterance: (e.speaker, e.text) for e in entries} == {
        k: (r["ensemble"], r["title"]) for k, r in rows.items()
    }
    (root / "audio" / "corrupt.flac").write_bytes(b"fLaC" + bytes(200))
    reader = MusicCorpusReader(root)
    assert len(reader.entries()) == 2 and reader.skipped == {"unreadable by soundfile": 1}
    assert [Path(p).name for p, _ in reader.skipped_files] == ["corrupt.flac"]
    assert len(list(reader)) == 2 and {u.speaker for u in reader} == {r["ensemble"] for r in rows.values()}
    with pytest.raises(CorpusError, match="no column 'artist'"):
        MusicCorpusReader(root, label="artist")


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="--soundfont .*apt-get install fluid-soundfont-gm"):
        synth.find_soundfont(tmp_path / "missing.sf2")
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install fluidsynth"):
        synth.fluidsynth_binary()


def test_music_reader_without_renderer(tmp_path: Path) -> None:
    """Layout, labels and track ids with dots or subfolders, on synthetic files (no fluidsynth)."""
    write(tmp_path / "audio" / "bwv153.1.flac", 1600, 16000)
    write(tmp_path / "audio" / "album" / "track01.wav", 800, 16000, seed=1)
    (tmp_path / "metadata.csv").write_text("track_id,title,artist\nbwv153.1,Ach Gott,Bach\n", encoding="utf-8")
    reader = open_corpus(tmp_path, label="artist")
    assert [(e.utterance, e.speaker, e.text) for e in reader.entries()] == [
        ("album/track01", "unknown", ""),
        ("bwv153.1", "Bach", "Ach Gott"),
    ]
    (tmp_path / "metadata.csv").write_text("id,title\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no track_id column"):
        MusicCorpusReader(tmp_path)


def test_folder_reader_track_ids_for_nested_music(tmp_path: Path) -> None:
    """FolderReader on a plain folder of music: the nested relative path is the track id."""
    write(tmp_path / "bach" / "chorales" / "bwv153.1.flac", 1600, 16000)
    write(tmp_path / "bach" / "bwv269.wav", 1600, 16000, seed=2)
    (tmp_path / "bach" / "chorales" / "broken.flac").write_bytes(b"not audio")
    reader = FolderReader(tmp_path)
    assert detect_kind(tmp_path) == "folder"
    assert [(e.utterance, e.speaker) for e in reader.entries()] == [
        ("bach/bwv269", "bach"),
        ("bach/chorales/bwv153.1", "bach/chorales"),
    ]
    assert reader.skipped == {"unreadable by soundfile": 1}
