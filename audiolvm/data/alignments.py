"""Time alignments (phones, words, ...) and the file formats they come in.

An :class:`Alignment` is a set of named :class:`Tier` s, each a time-ordered list of
:class:`Interval` s in seconds, plus the total ``duration``. Formats:

- Praat TextGrid, long ("ooTextFile") layout as written by the Montreal Forced Aligner
  (item [1] "words", item [2] "phones", empty labels for silence). The reader also takes the
  short layout and point tiers are skipped.
- HTS ``.lab``: ``start end label`` per line in 100 ns units (one tier, "phones"); a full-context label
  (``p1^p2-p3+p4=p5@...``, as HTS voices and ARCTIC ship them) is read as its current phone ``p3``.
- TIMIT ``.PHN``: ``start end label`` per line in samples at 16 kHz (one tier, "phones").
- CSV: ``start,end,label[,tier]`` in seconds, with or without a header row.
Readers raise ``UsageError("<file>:<line>: <what>; <fix>")`` (a ``ValueError``) on malformed input.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audiolvm.core.errors import MissingFileError, UnknownNameError, UsageError

PathLike = str | Path
HTS_UNIT = 1e-7  # seconds per HTS time unit (100 ns)
#: labels that mean "no phone/word here" in common aligners (MFA, HTS, Kaldi, TIMIT).
SILENCE_LABELS = frozenset({"", "sil", "sp", "spn", "pau", "h#", "<eps>", "_", "_:", "_!", ";"})
TIER_ORDER = ("words", "phones")  # the MFA layout


@dataclass(frozen=True)
class Interval:
    """A labelled span ``[start, end)`` in seconds. An empty label means silence."""

    start: float
    end: float
    label: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Tier:
    """A named, time-ordered list of non-overlapping intervals (gaps allowed)."""

    name: str
    intervals: list[Interval] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.intervals)

    def __iter__(self) -> Iterator[Interval]:
        return iter(self.intervals)

    @property
    def labels(self) -> list[str]:
        return [iv.label for iv in self.intervals]

    @property
    def end(self) -> float:
        """End time of the last interval (0.0 for an empty tier)."""
        return self.intervals[-1].end if self.intervals else 0.0

    def label_at(self, time: float, default: str = "") -> str:
        """The label of the interval that contains ``time`` (``default`` in gaps and outside)."""
        return self.frame_labels([time], default=default)[0]

    def frame_labels(self, times: Sequence[float] | np.ndarray, default: str = "") -> list[str]:
        """Label at each time (e.g. frame centres ``(np.arange(n) + 0.5) * hop / sr``)."""
        times = np.asarray(times, dtype=np.float64)  # (N,)
        starts = np.array([iv.start for iv in self.intervals])  # (I,)
        ends = np.array([iv.end for iv in self.intervals])  # (I,)
        idx = np.searchsorted(starts, times, side="right") - 1  # (N,) last interval starting <= t
        ok = (idx >= 0) & (idx < len(starts))
        ok[ok] &= times[ok] < ends[idx[ok]]
        return [
            self.intervals[i].label if good else default
            for i, good in zip(idx.tolist(), ok.tolist(), strict=True)
        ]

    def without_silence(self, silence: Iterable[str] = SILENCE_LABELS) -> Tier:
        """The same tier with silence intervals removed."""
        silence = frozenset(silence)
        return Tier(self.name, [iv for iv in self.intervals if iv.label not in silence])

    def normalize_silence(self, silence: Iterable[str] = SILENCE_LABELS) -> Tier:
        """Relabel every silence label (``sil``, ``sp``, ``pau``...) as ``""``, merging neighbours."""
        silence = frozenset(silence)
        return Tier(self.name, merge_silence([_relabel(iv, silence) for iv in self.intervals]))


def _relabel(iv: Interval, silence: frozenset[str]) -> Interval:
    return Interval(iv.start, iv.end, "") if iv.label in silence else iv


def merge_silence(intervals: Sequence[Interval]) -> list[Interval]:
    """Merge adjacent intervals that are both labelled ``""`` into one."""
    out: list[Interval] = []
    for iv in intervals:
        if out and iv.label == "" and out[-1].label == "" and abs(out[-1].end - iv.start) < 1e-9:
            out[-1] = Interval(out[-1].start, iv.end, "")
        else:
            out.append(iv)
    return out


@dataclass
class Alignment:
    """Named tiers over ``[0, duration]`` seconds; ``phones`` and ``words`` by convention."""

    tiers: dict[str, Tier]
    duration: float

    @property
    def phones(self) -> Tier:
        return self.tier("phones")

    @property
    def words(self) -> Tier:
        return self.tier("words")

    def tier(self, name: str) -> Tier:
        if name not in self.tiers:
            raise UnknownNameError(f"alignment has no tier {name!r}; tiers are {sorted(self.tiers)}")
        return self.tiers[name]

    @classmethod
    def from_tiers(cls, tiers: Iterable[Tier], duration: float | None = None) -> Alignment:
        """Build from tiers; ``duration`` defaults to the latest interval end."""
        tiers = list(tiers)
        end = max((t.end for t in tiers), default=0.0)
        return cls({t.name: t for t in tiers}, end if duration is None else max(duration, end))


# ----------------------------------------------------------------------------- TextGrid writing


def _quote(label: str) -> str:
    return '"' + label.replace('"', '""') + '"'


def _filled(tier: Tier, duration: float) -> list[Interval]:
    """The tier's intervals with every gap in ``[0, duration]`` filled by an empty interval."""
    out, t = [], 0.0
    for iv in tier.intervals:
        if iv.start > t + 1e-9:
            out.append(Interval(t, iv.start, ""))
        out.append(iv)
        t = iv.end
    if duration > t + 1e-9:
        out.append(Interval(t, duration, ""))
    return out


def textgrid_text(alignment: Alignment, digits: int | None = None) -> str:
    """Praat long-format TextGrid text; tiers in MFA order (words, phones), then the others.

    Times are written as exact float reprs, or rounded to ``digits`` decimals (7 keeps 0.1 us).
    """

    def t(x: float) -> str:
        return repr(float(x) if digits is None else round(float(x), digits))

    names = [n for n in TIER_ORDER if n in alignment.tiers]
    names += [n for n in alignment.tiers if n not in TIER_ORDER]
    dur = alignment.duration
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {t(dur)}"]
    lines += ["tiers? <exists> ", f"size = {len(names)}", "item []: "]
    for k, name in enumerate(names, start=1):
        ivs = _filled(alignment.tiers[name], dur)
        lines += [f"    item [{k}]:", '        class = "IntervalTier" ', f"        name = {_quote(name)} "]
        lines += ["        xmin = 0 ", f"        xmax = {t(dur)} ", f"        intervals: size = {len(ivs)} "]
        for j, iv in enumerate(ivs, start=1):
            lines += [f"        intervals [{j}]:", f"            xmin = {t(iv.start)} "]
            lines += [f"            xmax = {t(iv.end)} ", f"            text = {_quote(iv.label)} "]
    return "\n".join(lines) + "\n"


def write_textgrid(alignment: Alignment, path: PathLike, digits: int | None = None) -> Path:
    """Write ``alignment`` as a UTF-8 long-format TextGrid (see :func:`textgrid_text`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textgrid_text(alignment, digits), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- TextGrid reading

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"]|"")*")'  # a Praat string, "" escapes a quote, may span lines
    r"|(?P<skip>[A-Za-z][A-Za-z ]*\[\d*\]\s*:|[A-Za-z][A-Za-z ]*(?::\s*size)?\s*=|tiers\?|!.*)"
    r"|(?P<flag><exists>|<absent>)"
    r"|(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<other>\S+)"
)


class _Tokens:
    """Values of a TextGrid in order (long and short layouts give the same sequence)."""

    def __init__(self, text: str, path: PathLike) -> None:
        self.path, self.items, self.pos = str(path), [], 0
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind == "skip":
                continue
            line = text.count("\n", 0, m.start()) + 1
            self.items.append((kind, m.group(), line))

    def error(self, what: str, line: int | None = None) -> ValueError:
        if line is None:
            line = self.items[min(self.pos, len(self.items) - 1)][2] if self.items else 1
        return ValueError(f"{self.path}:{line}: {what}; check the file is a Praat TextGrid (long or short)")

    def take(self, kind: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(f"unexpected end of file, expected a {kind}")
        got, value, line = self.items[self.pos]
        if got != kind:
            raise self.error(f"expected a {kind}, got {value!r}", line)
        self.pos += 1
        return value, line

    def string(self) -> str:
        return self.take("string")[0][1:-1].replace('""', '"')

    def number(self) -> float:
        return float(self.take("number")[0])

    def count(self) -> int:
        value, line = self.take("number")
        if not value.isdigit():
            raise self.error(f"expected a count, got {value!r}", line)
        return int(value)


def parse_textgrid(text: str, path: PathLike = "<string>") -> Alignment:
    """Parse TextGrid text (long or short layout). Point (Text) tiers are skipped."""
    tok = _Tokens(text, path)
    if tok.string() != "ooTextFile" or tok.string() != "TextGrid":
        raise tok.error('header is not File type = "ooTextFile" / Object class = "TextGrid"', 1)
    tok.number()
    duration = tok.number()
    if tok.pos < len(tok.items) and tok.items[tok.pos][0] == "flag":
        if tok.take("flag")[0] == "<absent>":
            return Alignment({}, duration)
    tiers = [_parse_tier(tok) for _ in range(tok.count())]
    return Alignment({t.name: t for t in tiers if t is not None}, duration)


def _parse_tier(tok: _Tokens) -> Tier | None:
    cls, name = tok.string(), tok.string()
    tok.number()
    tok.number()
    n = tok.count()
    if cls == "TextTier":
        for _ in range(n):
            tok.number()
            tok.string()
        return None
    if cls != "IntervalTier":
        raise tok.error(f"tier {name!r} has unknown class {cls!r} (expected IntervalTier or TextTier)")
    intervals: list[Interval] = []
    for _ in range(n):
        line = tok.items[tok.pos][2] if tok.pos < len(tok.items) else None
        start, end, label = tok.number(), tok.number(), tok.string()
        _check_order(intervals, start, end, tok.path, line)
        intervals.append(Interval(start, end, label))
    return Tier(name, intervals)


def _check_order(previous: list[Interval], start: float, end: float, path: str, line: int | None) -> None:
    where = f"{path}:{line}" if line is not None else path
    if not (np.isfinite(start) and np.isfinite(end)) or end < start:
        raise UsageError(f"{where}: interval [{start}, {end}] ends before it starts; fix its times")
    if previous and start < previous[-1].end - 1e-9:
        raise UsageError(
            f"{where}: interval starting at {start} overlaps the previous one ending at "
            f"{previous[-1].end}; intervals of a tier must be time-ordered and disjoint"
        )


def read_textgrid(path: PathLike) -> Alignment:
    """Read a Praat TextGrid file (UTF-8, UTF-16 with BOM, or Latin-1)."""
    raw = Path(path).read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    return parse_textgrid(text, path)


# ----------------------------------------------------------------------------- HTS .lab and CSV


#: an HTS full-context label: ``p1^p2-p3+p4=p5`` then ``@``, ``_``, ``/A:`` ... fields; group 1 is the current phone
_HTS_FULL_CONTEXT = re.compile(r"^[^\^\-+=]*\^[^\^\-+=]*-([^\^\-+=]+)\+[^\^\-+=]*=")


def hts_phone(label: str) -> str:
    """The current phone of an HTS full-context label (``x^x-sil+hh=iy@...`` -> ``sil``); other labels unchanged."""
    match = _HTS_FULL_CONTEXT.match(label)
    return match.group(1) if match else label


def read_lab(path: PathLike, tier: str = "phones", unit: float = HTS_UNIT) -> Alignment:
    """Read an HTS label file: ``start end label`` per line, times in ``unit`` seconds (100 ns). Full-context
    labels are reduced to their current phone (:func:`hts_phone`), so mono and full-context files read alike."""
    return _read_timed(path, tier, unit, "100 ns units", hts_phone)


def read_phn(path: PathLike, tier: str = "phones", sample_rate: int = 16000) -> Alignment:
    """Read a TIMIT ``.PHN`` file: ``start end label`` per line, times in samples at ``sample_rate`` (16 kHz)."""
    return _read_timed(path, tier, 1.0 / sample_rate, f"samples at {sample_rate} Hz", str)


def _read_timed(path: PathLike, tier: str, unit: float, unit_name: str, label_of: Callable[[str], str]) -> Alignment:
    """``start end label`` lines with integer times in ``unit`` seconds; ``label_of`` maps each label."""
    intervals: list[Interval] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=2)
        try:
            start, end = int(parts[0]) * unit, int(parts[1]) * unit
        except (ValueError, IndexError):
            raise UsageError(
                f"{path}:{lineno}: expected 'start end label' with integer times in {unit_name}, "
                f"got {line.strip()!r}; labels without times cannot be read"
            ) from None
        label = label_of(parts[2].strip()) if len(parts) > 2 else ""
        _check_order(intervals, start, end, str(path), lineno)
        intervals.append(Interval(start, end, label))
    return Alignment.from_tiers([Tier(tier, intervals)])


def write_lab(tier: Tier, path: PathLike, unit: float = HTS_UNIT) -> Path:
    """Write one tier as an HTS label file (times rounded to ``unit``)."""
    rows = [f"{round(iv.start / unit)} {round(iv.end / unit)} {iv.label}" for iv in tier]
    path = Path(path)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def read_csv(path: PathLike, default_tier: str = "phones") -> Alignment:
    """Read ``start,end,label[,tier]`` rows in seconds; a header row is skipped."""
    tiers: dict[str, list[Interval]] = {}
    text = Path(path).read_text(encoding="utf-8-sig")
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if lineno == 1 and row[0].strip().lower() in {"start", "begin", "xmin", "onset"}:
            continue
        if len(row) not in (3, 4):
            raise UsageError(f"{path}:{lineno}: expected 3 or 4 columns (start,end,label[,tier]), got {row}")
        try:
            start, end = float(row[0]), float(row[1])
        except ValueError:
            raise UsageError(f"{path}:{lineno}: start/end {row[:2]} are not numbers (seconds)") from None
        name = row[3].strip() if len(row) == 4 and row[3].strip() else default_tier
        intervals = tiers.setdefault(name, [])
        _check_order(intervals, start, end, str(path), lineno)
        intervals.append(Interval(start, end, row[2]))
    return Alignment.from_tiers(Tier(n, ivs) for n, ivs in tiers.items())


def write_csv(alignment: Alignment, path: PathLike) -> Path:
    """Write every tier as ``start,end,label,tier`` rows with a header."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["start", "end", "label", "tier"])
    for name, tier in alignment.tiers.items():
        writer.writerows([repr(iv.start), repr(iv.end), iv.label, name] for iv in tier)
    path = Path(path)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


_READERS = {".textgrid": read_textgrid, ".lab": read_lab, ".csv": read_csv, ".phn": read_phn}


def load_alignment(path: PathLike) -> Alignment:
    """Read an alignment file, choosing the format from its suffix (.TextGrid, .lab, .csv, TIMIT .PHN)."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UsageError(f"{path}: unknown alignment format {path.suffix!r}; use .TextGrid, .lab, .csv or .PHN")
    if not path.is_file():
        raise MissingFileError(f"{path}: alignment file not found")
    return reader(path)
