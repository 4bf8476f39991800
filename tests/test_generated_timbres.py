"""Generated espeak-ng timbres (``data_scripts/timbres.py``) and the ``--timbres generated`` corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolvm.core.pitch import PitchSettings, median_f0
from data_scripts import make_speech_corpus as corpus_module
from data_scripts import timbres
from data_scripts.make_speech_corpus import (
    MAX_UNIQUE_SPEAKERS,
    CorpusOptions,
    FestivalOptions,
    generate_corpus,
    main,
    plan_corpus,
)
from tests.espeak_marks import needs_espeak


@pytest.mark.parametrize(("n_female", "n_male", "n"), [(16, 43, 40), (16, 43, 20), (5, 5, 7), (9, 2, 3)])
def test_balanced_genders_add_the_rarer_gender_until_even(n_female: int, n_male: int, n: int) -> None:
    genders = timbres.balanced_genders(n_female, n_male, n)
    f, m = n_female, n_male
    for g in genders:
        if f != m:
            assert g == ("F" if f < m else "M")  # never the majority while the two differ
        f, m = f + (g == "F"), m + (g == "M")
    assert len(genders) == n
    assert abs(f - m) <= max(1, abs(n_female - n_male) - n)


def test_generated_names_count_each_gender() -> None:
    assert timbres.generated_names(list("FFMFM")) == ["genf001", "genf002", "genm001", "genf003", "genm002"]


def test_drawn_timbres_follow_their_gender_and_espeak_ranges() -> None:
    rng = np.random.default_rng(0)
    drawn = {g: [timbres.draw_timbre(f"t{g}{i}", g, rng) for i in range(200)] for g in "FM"}
    scale = {g: np.mean([[f for f, _, _ in t.formants[1:6]] for t in ts]) for g, ts in drawn.items()}
    base = {g: np.mean([t.pitch[0] for t in ts]) for g, ts in drawn.items()}
    assert scale["F"] > scale["M"] + 10 and base["F"] > base["M"] + 50
    for t in drawn["F"] + drawn["M"]:
        assert len(t.formants) == 9 and t.pitch[0] < t.pitch[1]
        assert all(40 <= f <= 160 and 0 < h <= 130 and 0 < w <= 170 for f, h, w in t.formants)
        keywords = [line.split()[0] for line in t.variant_file().splitlines()]
        assert keywords[:3] == ["language", "name", "gender"] and keywords.count("formant") == 9
    with pytest.raises(ValueError, match="choose F or M"):
        timbres.draw_timbre("x", "X", rng)


def test_a_generated_corpus_starts_with_the_unique_corpus_unchanged() -> None:
    opts, fest, n = CorpusOptions(), FestivalOptions(), MAX_UNIQUE_SPEAKERS
    speakers, texts, genders, _ = plan_corpus(n + 5, 18, 0, opts, fest, "generated")
    unique, unique_texts, none, _ = plan_corpus(n, 18, 0, opts, fest, "unique")
    assert speakers[:n] == unique and texts[:n] == unique_texts and none == []  # the same voices, the same sentences
    assert genders == ["F"] * 5  # 16 F / 43 M in the catalogue: the rarer gender
    assert [s.voice.split("+")[1] for s in speakers[n:]] == [f"genf00{k}" for k in range(1, 6)]
    assert [s.id for s in speakers[n:]] == [f"e{n + k}" for k in range(1, 6)]
    assert len({t for ts in texts for t in ts[4:]}) == (n + 5) * 14  # own sentences stay distinct


@needs_espeak
def test_a_generated_corpus_adds_distinct_timbres_of_their_gender(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a 3-variant catalogue (2 M, 1 F), so that the corpus is small: 3 catalogue voices and 3 generated ones
    monkeypatch.setattr(corpus_module, "TIMBRES", {"F": ["f1"], "M": ["m1", "m3"]})
    monkeypatch.setattr(corpus_module, "MAX_UNIQUE_SPEAKERS", 3)
    summary = generate_corpus(tmp_path / "gen", 6, 1, 16000, 0, CorpusOptions(workers=2), timbres="generated")
    new = [summary["speakers"][f"e0{k}"] for k in (4, 5, 6)]
    assert [s["gender"] for s in new] == ["F", "M", "F"]  # 1 F / 2 M: F until even, then alternating
    assert [s["voice"].split("+")[1] for s in new] == ["genf001", "genm001", "genf002"]
    saved = json.loads((tmp_path / "gen" / "corpus.json").read_text())["generated_timbres"]
    assert sorted(saved) == ["genf001", "genf002", "genm001"]
    for name in saved:
        assert (tmp_path / "gen" / timbres.VARIANT_DIR / name).read_text().startswith(f"language variant\nname {name}")
    # re-made from the saved settings, each new timbre is on its gender's side of the F0 split and at least
    # MIN_DISTANCE from every catalogue variant and from the other new ones (less 0.05: espeak-ng's flutter and
    # noise carry over between syntheses, so a probe in another order moves the spectra by a few hundredths)
    restored = [timbres.Timbre(**{**t, "pitch": tuple(t["pitch"]), "formants": tuple(map(tuple, t["formants"])),
                                  "breath": tuple(t["breath"])}) for t in saved.values()]
    folder = timbres.private_data(tmp_path / "data", restored)
    voices = ["f1", "m1", "m3", *saved]
    probes = timbres.in_fresh_process(timbres.probe_voices, folder, voices)
    for t in restored:
        spectrum, f0 = probes[t.name]
        assert (f0 > timbres.F0_SPLIT) == (t.gender == "F"), (t.name, f0)
        others = [probes[v][0] for v in voices if v != t.name]
        assert min(timbres.timbre_distance(spectrum, o) for o in others) >= timbres.MIN_DISTANCE - 0.05
    # the written audio is the generated timbre's: its F0 is on the gender's side too
    for speaker in ("e04", "e05"):
        wave, rate = sf.read(next((tmp_path / "gen" / "wav48_silence_trimmed" / speaker).glob("*.flac")))
        female = median_f0(wave, PitchSettings(sample_rate=rate)) > timbres.F0_SPLIT
        assert female == (summary["speakers"][speaker]["gender"] == "F")


def test_a_bad_corpus_flag_exits_with_the_flag_and_its_range(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--speakers 300 with --timbres generated: choose 1\.\.259"):
        main(["--out", str(tmp_path / "x"), "--speakers", "300", "--timbres", "generated"])
    assert not (tmp_path / "x").exists()  # nothing written
