"""Alignment types and formats: TextGrid (long/short) round trip, HTS .lab, CSV, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiolvm.data.alignments import (
    Alignment,
    Interval,
    Tier,
    load_alignment,
    parse_textgrid,
    read_csv,
    read_lab,
    read_textgrid,
    textgrid_text,
    write_csv,
    write_lab,
    write_textgrid,
)
from audiolvm.data.phones import load_phone_tier


def _alignment() -> Alignment:
    sr = 22050  # times like the generated corpus: sample / 22050
    cuts = [0, 264, 1352, 3548, 4587, 6635, 9000, 9901]
    labels = ["", "D", "@2", "k", "w", "I", ""]
    phones = Tier(
        "phones",
        [Interval(a / sr, b / sr, lab) for a, b, lab in zip(cuts[:-1], cuts[1:], labels, strict=True)],
    )
    words = Tier(
        "words",
        [
            Interval(0, 264 / sr, ""),
            Interval(264 / sr, 3548 / sr, 'the "x"'),
            Interval(3548 / sr, 9000 / sr, "quïck"),
        ],
    )
    words.intervals.append(Interval(9000 / sr, 9901 / sr, ""))
    return Alignment({"phones": phones, "words": words}, 9901 / sr)


def _assert_same(a: Alignment, b: Alignment, tol: float = 1e-6) -> None:
    assert set(a.tiers) == set(b.tiers)
    assert abs(a.duration - b.duration) < tol
    for name in a.tiers:
        x, y = a.tier(name).intervals, b.tier(name).intervals
        assert [iv.label for iv in x] == [iv.label for iv in y], name
        assert np.allclose(
            [(iv.start, iv.end) for iv in x], [(iv.start, iv.end) for iv in y], atol=tol, rtol=0
        )


def test_textgrid_round_trip_is_exact(tmp_path: Path) -> None:
    original = _alignment()
    path = write_textgrid(original, tmp_path / "a.TextGrid")
    _assert_same(original, read_textgrid(path))
    _assert_same(original, load_alignment(path))
    _assert_same(original, read_textgrid(write_textgrid(original, tmp_path / "b.TextGrid", digits=7)))


def test_textgrid_uses_mfa_layout(tmp_path: Path) -> None:
    text = textgrid_text(_alignment())
    assert text.startswith('File type = "ooTextFile"\nObject class = "TextGrid"\n')
    assert text.index('name = "words"') < text.index('name = "phones"')  # item [1] words, item [2] phones
    assert "item [1]:" in text and "item [2]:" in text
    assert 'text = "the ""x""" ' in text  # Praat escapes quotes by doubling them


def test_textgrid_fills_gaps_with_silence() -> None:
    gappy = Alignment({"phones": Tier("phones", [Interval(0.1, 0.2, "a"), Interval(0.3, 0.4, "b")])}, 0.5)
    tier = parse_textgrid(textgrid_text(gappy)).phones
    assert tier.labels == ["", "a", "", "b", ""]
    assert [iv.start for iv in tier] == [0.0, 0.1, 0.2, 0.3, 0.4] and tier.end == 0.5


def test_textgrid_short_format() -> None:
    short = '\n'.join([
        'File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", "1.5", "<exists>", "2",
        '"IntervalTier"', '"phones"', "0", "1.5", "2", "0", "0.5", '"a"', "0.5", "1.5", '""',
        '"TextTier"', '"events"', "0", "1.5", "1", "0.7", '"click"',
    ])  # fmt: skip
    alignment = parse_textgrid(short)
    assert alignment.duration == 1.5
    assert list(alignment.tiers) == ["phones"]  # point tiers are skipped
    assert alignment.phones.intervals == [Interval(0.0, 0.5, "a"), Interval(0.5, 1.5, "")]


def test_lab_uses_100ns_units(tmp_path: Path) -> None:
    path = tmp_path / "x.lab"
    path.write_text("0 500000 sil\n500000 1200000 a\n1200000 2000000 x^x-b+c=d@1_2\n")
    alignment = load_alignment(path)
    assert alignment.phones.labels == ["sil", "a", "b"]  # a full-context label reads as its current phone
    assert alignment.phones.intervals[1].start == pytest.approx(0.05)
    assert alignment.duration == pytest.approx(0.2)
    again = read_lab(write_lab(alignment.phones, tmp_path / "y.lab"))
    _assert_same(alignment, again)


def _phone_rows() -> list[tuple[int, int, str]]:
    """(start, end) in samples at 16 kHz and an ARPAbet phone: "sil hh iy sil"."""
    return [(0, 3200, "sil"), (3200, 4800, "hh"), (4800, 8000, "iy"), (8000, 9600, "sil")]


def test_hts_full_context_and_timit_read_as_the_same_phones_as_a_textgrid(tmp_path: Path) -> None:
    rows = _phone_rows()
    phones = [r[2] for r in rows]
    textgrid = write_textgrid(Alignment.from_tiers([Tier("phones", [Interval(a / 16000, b / 16000, p)
                                                                      for a, b, p in rows])]), tmp_path / "u.TextGrid")
    context = ["x", "x", *phones, "x", "x"]  # HTS quinphone context: p1^p2-p3+p4=p5, padded with x
    full = [f"{a * 625} {b * 625} {context[i]}^{context[i + 1]}-{p}+{context[i + 3]}={context[i + 4]}"
            f"@1_{i}/A:0_0_0/B:1-1-{i}@1-1&1-4#1-1$1-1!0-0;0-0|0/C:0+0+0/J:4+3-1" for i, (a, b, p) in enumerate(rows)]
    (tmp_path / "u.lab").write_text("\n".join(full) + "\n")  # 100 ns units: 16 kHz samples x 625
    (tmp_path / "u.PHN").write_text("\n".join(f"{a} {b} {'h#' if p == 'sil' else p}" for a, b, p in rows) + "\n")
    reference = load_alignment(textgrid)
    for path in (tmp_path / "u.lab", tmp_path / "u.PHN"):
        got = load_alignment(path)
        labels = ["sil" if lab == "h#" else lab for lab in got.phones.labels]
        assert labels == reference.phones.labels, path
        assert np.allclose([(iv.start, iv.end) for iv in got.phones], [(iv.start, iv.end) for iv in reference.phones])
    for name in ("u.lab", "u.PHN"):  # the probe finds either beside the audio and maps it to the inventory
        only = tmp_path / name.split(".")[1]
        only.mkdir()
        (only / name).write_bytes((tmp_path / name).read_bytes())
        assert load_phone_tier(only / "u.wav").labels == ["sil", "HH", "IY", "sil"], name


def test_csv_with_header_and_tiers(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("start,end,label,tier\n0,0.25,hello,words\n0,0.1,h,phones\n0.1,0.25,@,phones\n")
    alignment = load_alignment(path)
    assert alignment.words.labels == ["hello"] and alignment.phones.labels == ["h", "@"]
    assert alignment.duration == pytest.approx(0.25)
    _assert_same(alignment, read_csv(write_csv(alignment, tmp_path / "y.csv")))


def test_csv_without_header_defaults_to_phones(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("0.0,0.5,a\n0.5,1.0,b\n")
    assert read_csv(path).phones.labels == ["a", "b"]


def test_frame_labels() -> None:
    tier = Tier("phones", [Interval(0.0, 0.1, "a"), Interval(0.2, 0.3, "b")])
    assert tier.frame_labels([0.05, 0.1, 0.15, 0.25, 0.35, -1.0]) == ["a", "", "", "b", "", ""]
    assert tier.label_at(0.2) == "b"
    assert Tier("empty").frame_labels([0.0]) == [""]


def test_normalize_silence_merges_neighbours() -> None:
    tier = Tier("phones", [Interval(0, 1, "sil"), Interval(1, 2, "sp"), Interval(2, 3, "a")])
    assert tier.normalize_silence().intervals == [Interval(0, 2, ""), Interval(2, 3, "a")]
    assert tier.without_silence().labels == ["a"]


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("bad.TextGrid", 'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = oops\n', 5),
        ("bad.lab", "0 100 a\n100 x b\n", 2),
        ("bad.csv", "start,end,label\n0,1,a\n1,2\n", 3),
        ("overlap.csv", "0,1,a\n0.5,2,b\n", 2),
        ("backwards.lab", "100 0 a\n", 1),
    ],
)
def test_malformed_file_error_names_file_and_line(tmp_path: Path, name: str, content: str, line: int) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"{name}:{line}:"):
        load_alignment(path)


def test_truncated_textgrid_and_unknown_suffix(tmp_path: Path) -> None:
    path = write_textgrid(_alignment(), tmp_path / "t.TextGrid")
    path.write_text("\n".join(path.read_text().splitlines()[:20]))  # stops inside an interval
    with pytest.raises(ValueError, match="t.TextGrid:.*end of file"):
        read_textgrid(path)
    with pytest.raises(ValueError, match=r"x\.json: unknown alignment format"):
        load_alignment(tmp_path / "x.json")
    with pytest.raises(KeyError, match="no tier 'words'"):
        _ = Alignment({}, 0.0).words
