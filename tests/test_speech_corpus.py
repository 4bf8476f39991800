"""The espeak-ng binding and the generated VCTK-layout corpus with exact TextGrid alignments."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pyworld
import soundfile as sf

from audiolvm.data.alignments import read_textgrid
from data_scripts import espeak
from data_scripts.make_speech_corpus import (
    MAX_SPEAKERS,
    MAX_UNIQUE_SPEAKERS,
    TIMBRE_F0_SPLIT,
    TIMBRES,
    CorpusOptions,
    choose_speakers,
    choose_unique_speakers,
    generate_corpus,
    make_sentences,
)
from tests.espeak_marks import ESPEAK_OK, ESPEAK_WHY, needs_espeak

OPTIONS = CorpusOptions(workers=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if not ESPEAK_OK:
        pytest.skip(f"libespeak-ng.so.1 cannot be loaded: {ESPEAK_WHY}")
    out = tmp_path_factory.mktemp("speech")
    return out, generate_corpus(out, n_speakers=2, n_sentences=2, rate=16000, seed=0, options=OPTIONS)


def _utterances(out: Path) -> list[Path]:
    return sorted((out / "wav48_silence_trimmed").glob("*/*_mic1.flac"))


def test_vctk_layout(corpus: tuple[Path, dict]) -> None:
    out, summary = corpus
    assert sorted(summary["speakers"]) == ["e01", "e02"] and summary["utterances"] == 4
    for spk in ("e01", "e02"):
        for utt in (1, 2):
            stem = f"{spk}_{utt:03d}"
            assert (out / "wav48_silence_trimmed" / spk / f"{stem}_mic1.flac").is_file()
            assert (out / "wav48_silence_trimmed" / spk / f"{stem}_mic1.TextGrid").is_file()
            assert (out / "txt" / spk / f"{stem}.txt").read_text().strip()
    info = (out / "speaker-info.txt").read_text().splitlines()
    assert info[0].split()[:5] == ["ID", "AGE", "GENDER", "ACCENTS", "REGION"]
    rows = {line.split()[0]: line.split() for line in info[1:]}
    assert set(rows) == {"e01", "e02"} and {rows["e01"][2], rows["e02"][2]} == {"F", "M"}
    saved = json.loads((out / "corpus.json").read_text())
    assert saved["seed"] == 0 and saved["rate"] == 16000 and saved["speakers"]["e01"]["voice"]


def test_shared_and_own_sentences(corpus: tuple[Path, dict]) -> None:
    out, summary = corpus
    assert summary["n_shared"] == 1
    text = {p.stem: p.read_text() for p in (out / "txt").glob("*/*.txt")}
    assert text["e01_001"] == text["e02_001"]  # shared: same number, same sentence
    assert text["e01_002"] != text["e02_002"]


def test_audio_duration_matches_alignment(corpus: tuple[Path, dict]) -> None:
    out, _ = corpus
    for flac in _utterances(out):
        info = sf.info(str(flac))
        assert info.samplerate == 16000 and info.channels == 1
        alignment = read_textgrid(flac.with_suffix(".TextGrid"))
        duration = info.frames / info.samplerate
        assert abs(duration - alignment.phones.end) < 0.01, flac.name
        assert abs(alignment.duration - alignment.phones.end) < 1e-6


def test_phones_tile_the_utterance_and_cover_words(corpus: tuple[Path, dict]) -> None:
    out, _ = corpus
    for flac in _utterances(out):
        alignment = read_textgrid(flac.with_suffix(".TextGrid"))
        phones = alignment.phones.intervals
        assert phones[0].start == 0.0
        assert all(iv.end > iv.start for iv in phones)
        assert all(
            a.end == b.start for a, b in zip(phones[:-1], phones[1:], strict=True)
        )  # contiguous, increasing
        assert sum(iv.label != "" for iv in phones) >= 5
        boundaries = {iv.start for iv in phones} | {phones[-1].end}
        spoken = [iv for iv in alignment.words if iv.label]
        sentence = (
            flac.parent.parent.parent / "txt" / flac.parent.name / flac.name.replace("_mic1.flac", ".txt")
        )
        assert " ".join(w.label for w in spoken) == sentence.read_text().strip().lower().strip(".?").replace(
            ",", ""
        )
        for word in spoken:
            assert word.start in boundaries and word.end in boundaries, word
            inside = [p for p in phones if word.start <= p.start < word.end]
            assert inside and all(p.label for p in inside), word  # no pause inside a word


def test_deterministic_whatever_the_workers(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = corpus
    generate_corpus(tmp_path, 2, 2, 16000, 0, CorpusOptions(workers=2))
    for flac in _utterances(out):
        twin = tmp_path / flac.relative_to(out)
        assert twin.read_bytes() == flac.read_bytes(), flac.name
        assert twin.with_suffix(".TextGrid").read_text() == flac.with_suffix(".TextGrid").read_text()


def _f0(wave: np.ndarray, sr: int) -> float:
    """Crude pitch of a voiced stretch: autocorrelation peak between 60 and 400 Hz."""
    x = wave.astype(np.float64) - wave.mean()
    ac = np.correlate(x, x, mode="full")[x.size - 1 :]  # (T,)
    lo, hi = sr // 400, sr // 60
    return sr / (lo + int(np.argmax(ac[lo:hi])))


@needs_espeak
@pytest.mark.parametrize(("voice", "female"), [("en-us+m1", False), ("en-gb+f2", True), ("en-gb+m3", False)])
def test_synth_events_and_variant(voice: str, female: bool) -> None:
    text = "The cat sat on the mat in the hall all day."  # espeak sends one WORD event for "on the"
    result = espeak.EspeakSynth(voice).synth(text)
    wave, phonemes, words = result  # a (wave, phonemes, words) tuple
    assert result.sample_rate == 22050 and wave.dtype == np.int16 and phonemes and words
    starts = [p.start for p in result.phonemes]
    assert starts[0] == 0 and result.phonemes[-1].end == result.wave.size
    assert all(a.end == b.start for a, b in zip(result.phonemes[:-1], result.phonemes[1:], strict=True))
    assert [w.text for w in result.words] == text.strip(".").split()
    assert all(text[w.char_start :].startswith(w.text) for w in result.words)
    vowel = max(
        (p for p in result.phonemes if p.symbol in {"a", "eI", "O:", "a#"}), key=lambda p: p.end - p.start
    )
    f0 = _f0(result.wave[vowel.start : vowel.end], result.sample_rate)
    assert (f0 > 150) == female, f"{voice}: {f0:.0f} Hz"  # espeak-ng 1.51 drops "+f2" after "en-gb"


@needs_espeak
def test_unknown_voice_is_a_clear_error() -> None:
    with pytest.raises(espeak.EspeakError, match="voice 'xx-nowhere' not found"):
        espeak.EspeakSynth("xx-nowhere")


def test_missing_library_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(espeak.ctypes, "CDLL", no_library)
    with pytest.raises(
        espeak.EspeakError, match=r"libespeak-ng\.so\.1 could not be loaded.*apt-get install espeak-ng"
    ):
        espeak._load_library()


def test_speakers_are_balanced_and_distinct() -> None:
    speakers = choose_speakers(12, np.random.default_rng(0), (150, 190), (40, 60))
    assert [s.gender for s in speakers].count("F") == 6
    assert len({s.voice.split("+")[0] for s in speakers[:8]}) == 8  # every accent in the first 8
    everyone = choose_speakers(MAX_SPEAKERS, np.random.default_rng(1), (150, 190), (40, 60))
    assert len({s.voice for s in everyone}) == MAX_SPEAKERS
    assert not any("croak" in s.voice or "whisper" in s.voice for s in everyone)
    assert all("_" not in s.id for s in everyone)
    with pytest.raises(ValueError, match="--speakers"):
        choose_speakers(MAX_SPEAKERS + 1, np.random.default_rng(0), (150, 190), (40, 60))


def test_unique_timbres_give_every_voice_its_own_variant() -> None:
    rng = np.random.default_rng(0)
    everyone = choose_unique_speakers(MAX_UNIQUE_SPEAKERS, rng, (150, 190), (40, 60))
    variants = [s.voice.split("+")[1] for s in everyone]
    assert len(set(variants)) == MAX_UNIQUE_SPEAKERS  # no two voices share a timbre
    genders = [s.gender for s in everyone]
    assert genders[:32] == list("FM" * 16) and set(genders[32:]) == {"M"}  # alternating while both pools last
    assert len({s.id for s in everyone}) == MAX_UNIQUE_SPEAKERS
    again = choose_unique_speakers(6, np.random.default_rng(0), (150, 190), (40, 60))
    assert [s.voice for s in again] == [s.voice for s in everyone[:6]]  # seeded
    with pytest.raises(ValueError, match="--timbres unique"):
        choose_unique_speakers(MAX_UNIQUE_SPEAKERS + 1, rng, (150, 190), (40, 60))


@needs_espeak
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng command is not installed")
def test_every_unique_timbre_is_an_espeak_variant_of_its_gender() -> None:
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    stated = {}  # variant file name -> the gender its file states ("-" when none)
    for line in listing.splitlines()[1:]:
        _, _, age_gender, _, file, *_ = line.split()
        stated[file.removeprefix("!v/")] = age_gender.split("/")[1]
    for gender, variants in TIMBRES.items():
        for variant in variants:
            assert variant in stated, f"{variant}: not an espeak-ng variant"
            result = espeak.EspeakSynth(f"en-us+{variant}").synth("The cat sat on the mat in the hall all day long.")
            f0, _ = pyworld.dio(result.wave.astype(np.float64) / 32768, result.sample_rate)
            median = float(np.median(f0[f0 > 0]))
            clear = abs(median - TIMBRE_F0_SPLIT) > 0.1 * TIMBRE_F0_SPLIT
            by = ("F" if median > TIMBRE_F0_SPLIT else "M") if clear else stated[variant]
            assert by == gender, f"{variant}: {median:.0f} Hz, espeak-ng file says {stated[variant]}; TIMBRES {gender}"


def test_sentences_are_distinct_and_seeded() -> None:
    a = make_sentences(200, np.random.default_rng(3), 5, 8)
    assert len(set(a)) == 200 and a == make_sentences(200, np.random.default_rng(3), 5, 8)
    assert all(5 <= len(s.split()) <= 8 and s.isascii() and not any(c.isdigit() for c in s) for s in a)
