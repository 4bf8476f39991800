"""Phone inventory and label mapping, cross-format alignment agreement, majority frame labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiolvm.data.alignments import Alignment, Interval, Tier, load_alignment, write_csv, write_lab, write_textgrid
from audiolvm.data.phones import (
    ARPABET_39,
    ESPEAK_TO_ARPABET,
    PHONES,
    SILENCE,
    UnknownPhoneError,
    detect_source,
    find_alignment,
    frame_labels_majority,
    inventory_markdown,
    load_phone_tier,
    map_phone,
    map_tier,
)

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "data" / "speech"


def test_inventory_is_39_arpabet_phones_plus_silence() -> None:
    assert len(set(ARPABET_39)) == 39 and PHONES == (*ARPABET_39, SILENCE)
    assert set(ESPEAK_TO_ARPABET.values()) <= set(ARPABET_39)
    assert set(ESPEAK_TO_ARPABET.values()) == set(ARPABET_39)  # every class is reachable from espeak-ng


def test_docs_table_matches_the_module() -> None:
    assert (ROOT / "docs" / "phones.md").read_text(encoding="utf-8") == inventory_markdown()


def test_espeak_mapping_covers_every_label_in_the_corpus() -> None:
    grids = sorted(SPEECH.rglob("*.TextGrid"))
    assert len(grids) == 216
    seen: set[str] = set()
    for path in grids:
        phones = load_alignment(path).phones
        assert detect_source(phones.labels) == "espeak", path
        mapped = map_tier(phones, path=path)  # raises UnknownPhoneError on any label outside the table
        assert set(mapped.labels) <= set(PHONES)
        seen |= set(phones.labels)
    assert {"aU", "@2", "t#", "I2", "3:", "@L", "r-"} <= seen and "" in seen


@pytest.mark.parametrize(
    ("label", "source", "expected"),
    [("aU", "auto", "AW"), ("@2", "auto", "AH"), ("t#", "espeak", "T"), ("3:", "auto", "ER"), ("@L", "auto", "L"),
     ("T", "espeak", "TH"), ("T", "arpabet", "T"), ("AH0", "auto", "AH"), ("iy1", "auto", "IY"),
     ("ax", "arpabet", "AH"), ("dx", "arpabet", "T"), ("tcl", "arpabet", SILENCE), ("", "auto", SILENCE),
     ("sp", "espeak", SILENCE), ("spn", "arpabet", SILENCE), ("SIL", "auto", SILENCE)],
)
def test_map_phone(label: str, source: str, expected: str) -> None:
    assert map_phone(label, source) == expected


def test_unknown_and_ambiguous_labels_are_clear_errors() -> None:
    with pytest.raises(UnknownPhoneError, match=r"x\.TextGrid: phone label 'QQ'"):
        map_tier(Tier("phones", [Interval(0, 1, "a"), Interval(1, 2, "QQ")]), path="x.TextGrid")
    assert map_phone("QQ", fallback=SILENCE) == SILENCE
    with pytest.raises(UnknownPhoneError, match="'T' is ambiguous"):
        map_phone("T")  # espeak-ng "thin" or ARPAbet "tin"
    arpabet = Tier("phones", [Interval(0, 1, "DH"), Interval(1, 2, "AH0"), Interval(2, 3, "T")])
    espeak = Tier("phones", [Interval(0, 1, "D"), Interval(1, 2, "@"), Interval(2, 3, "T")])
    assert map_tier(arpabet).labels == ["DH", "AH", "T"]  # the tier decides the source once
    assert map_tier(espeak).labels == ["DH", "AH", "TH"]


def _tier() -> Tier:
    times = [0.0, 0.0731, 0.1402, 0.2213, 0.3, 0.4125, 0.5]
    labels = ["", "h", "@", "l", "oU", ""]
    return Tier("phones", [Interval(a, b, lab) for a, b, lab in zip(times[:-1], times[1:], labels, strict=True)])


def test_textgrid_lab_and_csv_read_back_identically(tmp_path: Path) -> None:
    tier = _tier()
    alignment = Alignment({"phones": tier}, tier.end)
    paths = [write_textgrid(alignment, tmp_path / "a.TextGrid"), write_lab(tier, tmp_path / "a.lab"),
             write_csv(alignment, tmp_path / "a.csv")]
    tiers = [load_alignment(p).phones for p in paths]
    for other in tiers:
        assert other.labels == tier.labels
        assert np.allclose([(iv.start, iv.end) for iv in other], [(iv.start, iv.end) for iv in tier], atol=1e-7)
    frames = [frame_labels_majority(map_tier(t), 50, 0.01) for t in tiers]
    assert frames[0] == frames[1] == frames[2]


def test_find_alignment_prefers_textgrid_then_lab_then_csv(tmp_path: Path) -> None:
    audio = tmp_path / "x_mic1.flac"
    assert find_alignment(audio) is None
    with pytest.raises(FileNotFoundError, match=r"x_mic1\.flac: no alignment beside it"):
        load_phone_tier(audio)
    write_csv(Alignment({"phones": _tier()}, 0.5), tmp_path / "x_mic1.csv")
    assert find_alignment(audio) == tmp_path / "x_mic1.csv"
    write_lab(_tier(), tmp_path / "x_mic1.lab")
    assert find_alignment(audio) == tmp_path / "x_mic1.lab"
    assert load_phone_tier(audio).labels == [SILENCE, "HH", "AH", "L", "OW", SILENCE]


def test_majority_labels_with_boundaries_inside_windows_a_tie_and_a_gap() -> None:
    tier = Tier("phones", [
        Interval(0.0, 0.3, "a"),  # frame 0: all a; frame 1: a 0.05 vs b 0.2
        Interval(0.3, 0.625, "b"),  # frame 2: b 0.125 vs gap 0.125 -> tie, b starts first
        Interval(0.875, 1.0, "c"),  # frame 3: gap 0.125 vs c 0.125 -> tie, the gap (silence) starts first
        Interval(1.0, 1.1, "d"), Interval(1.1, 1.15, ""), Interval(1.15, 1.25, "e"),  # frame 4: d and e tie
        Interval(1.5, 1.6, "sp"), Interval(1.6, 1.7, "x"),  # frame 6: sp 0.1 + gap 0.05 beat x 0.1
    ])  # fmt: skip
    labels = frame_labels_majority(tier, 8, 0.25)
    assert labels == ["a", "b", "b", SILENCE, "d", SILENCE, SILENCE, SILENCE]  # frame 7 lies past the end
    assert frame_labels_majority(tier, 3, 0.25, silence_label="<pau>") == ["a", "b", "b"]
    assert frame_labels_majority(Tier("phones"), 2, 0.1) == [SILENCE, SILENCE]


def test_majority_labels_match_a_brute_force_count() -> None:
    """Random tiers on a grid of 1/16 window: the label with the most grid cells, ties to the first seen."""
    rng = np.random.default_rng(0)
    hop, sub = 0.02, 16
    for _ in range(20):
        cuts = np.unique(rng.integers(0, 12 * sub, size=14))
        labels = rng.choice(["a", "b", "c", ""], size=len(cuts) - 1)
        keep = rng.random(len(labels)) < 0.8  # dropped intervals leave gaps
        tier = Tier("phones", [Interval(a * hop / sub, b * hop / sub, str(lab))
                               for a, b, lab, k in zip(cuts[:-1], cuts[1:], labels, keep, strict=True) if k])
        cells = tier.frame_labels((np.arange(12 * sub) + 0.5) * hop / sub)  # label of each grid cell
        cells = [SILENCE if c == "" else c for c in cells]
        expected = []
        for f in range(12):
            window = cells[f * sub:(f + 1) * sub]
            counts = {lab: window.count(lab) for lab in window}
            best = max(counts.values())
            expected.append(next(lab for lab in window if counts[lab] == best))
        assert frame_labels_majority(tier, 12, hop) == expected
