"""Festival diphone voices (data_scripts/festival.py): exact segment timings, phone mapping, prosody, and the
Festival speakers of the generated VCTK-layout corpus (make_speech_corpus.py --festival-speakers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolvm.core.pitch import PitchSettings, extract_pitch
from audiolvm.data.alignments import Interval, Tier, read_textgrid, write_textgrid
from audiolvm.data.phones import SILENCE, find_alignment, load_phone_tier, map_tier
from audiolvm.data.readers import VCTKReader, detect_kind, open_corpus
from data_scripts import festival
from data_scripts import make_speech_corpus as msc
from tests.espeak_marks import ESPEAK_OK, ESPEAK_WHY

HAVE_FESTIVAL = shutil.which("festival") is not None
needs_festival = pytest.mark.skipif(
    not HAVE_FESTIVAL, reason=f"festival is not installed ({festival.INSTALL_HINT})"
)
TEXT = "The dog barked."
# Festival's segments for TEXT, mapped (kal_diphone and ked_diphone share the CMU lexicon)
EXPECTED = ["DH", "AH", "D", "AO", "G", "B", "AA", "R", "K", "T"]
LOW, HIGH, SLOW = (festival.Prosody(1.0, 90, 13), festival.Prosody(1.0, 140, 20), festival.Prosody(1.4, 90, 13))


@pytest.fixture(scope="module")
def renders() -> dict[str, festival.Rendering]:
    """TEXT by kal_diphone at a low F0, a high F0, and slower (3 festival runs, ~0.3 s each)."""
    if not HAVE_FESTIVAL:
        pytest.skip(f"festival is not installed ({festival.INSTALL_HINT})")
    return {name: festival.render(TEXT, "kal_diphone", p) for name, p in (("low", LOW), ("high", HIGH),
                                                                          ("slow", SLOW))}  # fmt: skip


def test_segments_tile_the_audio(renders: dict[str, festival.Rendering]) -> None:
    for result in renders.values():
        segs = result.segments
        assert result.sample_rate == festival.VOICE_RATE and result.wave.dtype == np.float32
        assert segs[0].start == 0.0 and segs[0].is_pause and segs[-1].is_pause
        assert all(s.end > s.start for s in segs)
        assert all(a.end == b.start for a, b in zip(segs[:-1], segs[1:], strict=True))
        assert abs(segs[-1].end - result.duration) < 0.02
        words = result.words
        assert [w.name.lower() for w in words] == ["the", "dog", "barked"]
        bounds = {s.start for s in segs} | {segs[-1].end}
        assert all(w.start in bounds and w.end in bounds and w.end > w.start for w in words)


def test_timings_match_the_sound(renders: dict[str, festival.Rendering]) -> None:
    """The leading and trailing pauses are silent and the words are not: the times are the wave's own."""
    for result in renders.values():
        first, last, words = result.segments[0], result.segments[-1], result.words
        speech = _rms(result, words[0].start, words[-1].end)
        assert speech > 0.02
        assert _rms(result, first.start, first.end - 0.01) < 0.03 * speech  # below -30 dB
        assert _rms(result, last.start + 0.03, last.end) < 0.03 * speech


def _rms(result: festival.Rendering, start: float, end: float) -> float:
    piece = result.wave[round(start * result.sample_rate) : round(end * result.sample_rate)]
    return float(np.sqrt(np.mean(piece**2)))


def test_untrimmed_wave_only_adds_a_short_tail() -> None:
    if not HAVE_FESTIVAL:
        pytest.skip(f"festival is not installed ({festival.INSTALL_HINT})")
    whole = festival.render(TEXT, "ked_diphone", rate=22050, trim=False)
    cut = festival.render(TEXT, "ked_diphone", rate=22050)
    assert whole.segments[:-1] == cut.segments[:-1] and whole.sample_rate == cut.sample_rate == 22050
    assert abs(whole.segments[-1].end - cut.segments[-1].end) <= 0.5 / festival.VOICE_RATE  # on a sample
    assert 0 <= whole.duration - cut.duration < 0.1  # Festival's overlap-add tail after the final pause
    assert abs(cut.segments[-1].end - cut.duration) < 1.5 / 22050  # within a sample, after resampling


def test_phones_map_to_arpabet(renders: dict[str, festival.Rendering], tmp_path: Path) -> None:
    result = renders["low"]
    alignment = msc.festival_alignment(result)
    write_textgrid(alignment, tmp_path / "dog_mic1.TextGrid")
    mapped = load_phone_tier(tmp_path / "dog_mic1.flac")  # the TextGrid beside it; raises on an unknown label
    assert [iv.label for iv in mapped if iv.label != SILENCE] == EXPECTED
    assert [iv.label for iv in alignment.phones][1:-1] == [s.name for s in result.segments][1:-1]  # as emitted
    raw = Tier("phones", [Interval(s.start, s.end, s.name) for s in result.segments])  # pau included
    assert [iv.label for iv in map_tier(raw)] == [SILENCE, *EXPECTED, SILENCE] and raw.labels[0] == "pau"


def _median_f0(result: festival.Rendering) -> float:
    f0, voiced = extract_pitch(result.wave, PitchSettings(sample_rate=result.sample_rate))
    return float(np.median(f0[voiced]))


def test_prosody_changes_what_it_claims(renders: dict[str, festival.Rendering]) -> None:
    low, high, slow = _median_f0(renders["low"]), _median_f0(renders["high"]), _median_f0(renders["slow"])
    assert 1.35 < high / low < 1.75, (low, high)  # asked for 140 / 90 = 1.56
    assert abs(slow / low - 1) < 0.1, (low, slow)  # the stretch leaves F0 alone
    assert abs(low - 90) < 15 and abs(high - 140) < 20, (low, high)
    ratio = renders["slow"].duration / renders["low"].duration
    assert 1.3 < ratio < 1.5, ratio  # Duration_Stretch 1.4 vs 1.0
    assert [s.name for s in renders["slow"].segments] == [s.name for s in renders["low"].segments]


def test_rendering_is_deterministic_and_batch_independent(renders: dict[str, festival.Rendering]) -> None:
    again = festival.render_many(["Anna painted a red boat.", TEXT], "kal_diphone", LOW)[1]
    assert np.array_equal(again.wave, renders["low"].wave) and again.segments == renders["low"].segments


def test_festival_speakers_alternate_and_spread() -> None:
    speakers = msc.choose_festival_speakers(6, np.random.default_rng(0), (0.9, 1.3), (80, 140))
    assert [s.id for s in speakers] == [f"f0{i}" for i in range(1, 7)]
    assert [s.voice for s in speakers] == ["kal_diphone", "ked_diphone"] * 3
    for voice in festival.VOICES:  # one draw in each third of each range per voice
        mine = [s for s in speakers if s.voice == voice]
        assert sorted(int((s.f0 - 80) / 20.001) for s in mine) == [0, 1, 2]
        assert sorted(int((s.stretch - 0.9) / 0.13334) for s in mine) == [0, 1, 2]
    assert all(abs(s.f0_std - s.f0 / 7) < 0.06 for s in speakers)
    assert speakers == msc.choose_festival_speakers(6, np.random.default_rng(0), (0.9, 1.3), (80, 140))


def test_missing_festival_names_the_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(festival.shutil, "which", lambda name: None)
    with pytest.raises(festival.FestivalError, match="apt-get install festival festvox-kallpc16k festvox-kdlpc16k"):
        msc.generate_corpus(tmp_path / "c", 1, 2, festival=msc.FestivalOptions(speakers=2))
    assert not (tmp_path / "c").exists()  # nothing written
    with pytest.raises(SystemExit, match="festvox-kdlpc16k"):
        msc.main(["--out", str(tmp_path / "c"), "--speakers", "1", "--festival-speakers", "1"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if not HAVE_FESTIVAL:
        pytest.skip(f"festival is not installed ({festival.INSTALL_HINT})")
    if not ESPEAK_OK:
        pytest.skip(f"libespeak-ng.so.1 cannot be loaded: {ESPEAK_WHY}")
    out = tmp_path_factory.mktemp("festival_corpus")
    options = msc.CorpusOptions(workers=1)
    summary = msc.generate_corpus(out, 1, 2, 22050, 0, options, msc.FestivalOptions(speakers=2))
    return out, summary


def test_corpus_layout_is_vctk(corpus: tuple[Path, dict]) -> None:
    out, summary = corpus
    assert detect_kind(out) == "vctk"
    reader = open_corpus(out, cache=False)
    assert isinstance(reader, VCTKReader)
    entries = reader.entries()
    assert sorted({e.speaker for e in entries}) == ["e01", "f01", "f02"] and len(entries) == 6
    assert all(e.text and e.sample_rate == 22050 for e in entries)
    text = {e.utterance: e.text for e in entries}
    assert text["e01_001"] == text["f01_001"] == text["f02_001"]  # the shared sentence
    assert len({text["e01_002"], text["f01_002"], text["f02_002"]}) == 3
    for e in entries:
        assert find_alignment(e.path) == Path(e.path).with_suffix(".TextGrid")
    info = {line.split()[0]: line for line in (out / "speaker-info.txt").read_text().splitlines()[1:]}
    f01 = summary["speakers"]["f01"]
    assert info["f01"].endswith(f"festival kal_diphone stretch {f01['stretch']:g} f0 {f01['f0']}")
    assert "festival ked_diphone" in info["f02"] and "espeak-ng" in info["e01"]
    saved = json.loads((out / "corpus.json").read_text())
    assert saved["festival"]["speakers"] == 2 and "--festival-speakers 2" in saved["command"]
    assert "Speakers f01-f02 are Festival" in (out / "README.md").read_text()


def test_corpus_festival_alignments(corpus: tuple[Path, dict]) -> None:
    out, _ = corpus
    for flac in sorted((out / "wav48_silence_trimmed").glob("f0*/*_mic1.flac")):
        info = sf.info(str(flac))
        alignment = read_textgrid(flac.with_suffix(".TextGrid"))
        assert list(alignment.tiers) == ["words", "phones"]
        phones = alignment.phones.intervals
        assert phones[0].start == 0.0 and all(a.end == b.start for a, b in zip(phones[:-1], phones[1:], strict=True))
        assert abs(info.frames / info.samplerate - phones[-1].end) < 0.02, flac.name
        mapped = load_phone_tier(flac)  # no UnknownPhoneError
        assert sum(iv.label != SILENCE for iv in mapped) >= 10
        sentence = (out / "txt" / flac.parent.name / flac.name.replace("_mic1.flac", ".txt")).read_text()
        words = [iv.label for iv in alignment.words if iv.label]
        assert words == sentence.strip().lower().strip(".?").replace(",", "").split()
