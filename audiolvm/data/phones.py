"""One phone inventory for probing, label mapping into it, and majority phone labels per code frame.

The inventory is :data:`ARPABET_39`, the 39 phones of the CMU Pronouncing Dictionary (the usual
TIMIT/CMU folding: 15 vowels, 24 consonants, no stress), plus :data:`SILENCE` (``"sil"``) for
pauses and gaps: :data:`PHONES`, 40 classes. Two kinds of labels map into it:

- **espeak-ng** English mnemonics (Kirshenbaum-like ASCII, as in the ``phones`` tier of
  ``data/speech``): :data:`ESPEAK_TO_ARPABET`, which covers the phonemes of espeak-ng 1.51's ``en``
  phoneme table, its accent tables (``en-us``, ``en-rp``, ``en-sc``, ...) and the consonants they
  inherit. Vowels follow the CMU lexical convention (``3`` "letter" -> ER, ``aa`` "bath" -> AE,
  ``A@`` "start" -> AA), so an espeak-ng alignment and an ARPAbet one of the same words agree.
  Syllabic consonants fold to the consonant (``@L`` -> L, ``n-`` -> N), flaps, dental and glottal
  variants of t fold to T. The table with IPA and example words is ``docs/phones.md``
  (:func:`inventory_markdown` writes it).
- **ARPAbet** as written by CMUdict or the Montreal Forced Aligner's ARPA models (``AH0``, ``iy1``):
  stress digits are stripped and case is ignored; TIMIT's extra phones fold as in Lee & Hon (1989)
  (:data:`ARPABET_ALIASES`: ``ax`` -> AH, ``ix`` -> IH, ``dx`` -> T, closures -> sil, ...). Festival's
  ``radio`` phones (``data_scripts/festival.py``) are such labels in lower case, with ``brth`` (breath) -> sil.

Some labels mean different phones in the two sets (espeak ``T`` is "thin", ARPAbet ``T`` is "tin";
likewise ``D``, ``S``, ``Z``, ``N``, ``V``, ``aa``), so :func:`map_tier` decides the source once per
tier from all its labels, and :func:`map_phone` with ``source="auto"`` refuses such a label.
Silence labels (:data:`~audiolvm.data.alignments.SILENCE_LABELS`: ``""``, ``sil``, ``sp``, ``spn``,
``pau``...) map to ``sil``. An unknown label raises :class:`UnknownPhoneError` naming the label and
the file, unless a ``fallback`` label is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.data.alignments import SILENCE_LABELS, Interval, Tier, load_alignment

PathLike = str | Path
SILENCE = "sil"
ARPABET_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
ARPABET_CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
                      "T", "TH", "V", "W", "Y", "Z", "ZH")
#: the 39 CMUdict phones (stress removed), vowels first.
ARPABET_39 = ARPABET_VOWELS + ARPABET_CONSONANTS
#: the probing classes: ARPABET_39 and ``sil``.
PHONES = ARPABET_39 + (SILENCE,)
SOURCES = ("auto", "espeak", "arpabet")
ALIGNMENT_SUFFIXES = (".TextGrid", ".lab", ".csv", ".PHN")

# espeak-ng mnemonic -> (ARPAbet, IPA as espeak-ng renders it (en-us / en-gb-x-rp), example word)
_ESPEAK: dict[str, tuple[str, str, str]] = {
    # vowels and diphthongs
    "@": ("AH", "ə", "comma"), "@2": ("AH", "ə", "the (before a consonant)"), "@5": ("UH", "ʊ", "to (weak)"),
    "@-": ("AH", "ə", "schwa, elidable"), "@#": ("AH", "ə", "schwa variant"),
    "a#": ("AH", "ɐ", "about, writer (RP)"), "a#2": ("AE", "æ", "unstressed a"), "V": ("AH", "ʌ", "strut"),
    "3": ("ER", "ɚ / ɐ", "letter"), "3:": ("ER", "ɜː", "nurse"), "IR": ("ER", "əɹ", "mirror (en-us)"),
    "VR": ("ER", "ʌɹ", "hurry (en-us)"),
    "a": ("AE", "æ", "trap"), "a2": ("AE", "æ", "trap, unstressed"), "a/": ("AE", "æ / a", "trap (en-sc)"),
    "aa": ("AE", "æ / ɑː", "bath"),
    "A:": ("AA", "ɑː", "palm"), "A@": ("AA", "ɑːɹ / ɑː", "start"), "A#": ("AA", "ɑː / æ", "bath variant"),
    "A~": ("AA", "ɑ̃", "croissant"),
    "0": ("AA", "ɑː / ɒ", "lot"), "0#": ("AA", "ɑː / ɒ", "lot, unstressed"), "02": ("AA", "ʌ / ɒ", "lot variant"),
    "O": ("AO", "ɔ", "thought, short"), "O:": ("AO", "ɔː", "thought"), "O2": ("AO", "ɔ / ɒ", "often"),
    "O@": ("AO", "ɔːɹ / ɔː", "north"), "o@": ("AO", "oːɹ / ɔː", "force"), "O~": ("AO", "ɔ̃", "restaurant"),
    "E": ("EH", "ɛ", "dress"), "E#": ("EH", "ɛ", "dress, unstressed"), "E2": ("EH", "ɛ", "dress variant"),
    "e": ("EH", "e", "dress (close)"), "e#": ("EH", "ɛ / ɪ", "unstressed e"), "e@": ("EH", "ɛɹ / eə", "square"),
    "I": ("IH", "ɪ", "kit"), "I2": ("IH", "ɪ", "kit, unstressed"), "I#": ("IH", "ᵻ / ɪ", "wanted"),
    "I2#": ("IH", "ᵻ / ɪ", "horses"), "i@": ("IH", "iə", "idea"), "i@3": ("IH", "ɪɹ / iə", "near"),
    "i": ("IY", "i / ɪ", "happy"), "i:": ("IY", "iː", "fleece"),
    "U": ("UH", "ʊ", "foot"), "U@": ("UH", "ʊɹ / ʊə", "cure"), "u:": ("UW", "uː", "goose"),
    "eI": ("EY", "eɪ", "face"), "e:": ("EY", "eː", "face (monophthong)"),
    "aI": ("AY", "aɪ", "price"), "aI2": ("AY", "aɪ", "price variant"), "aI@": ("AY", "aɪə", "fire"),
    "aI3": ("AY", "aɪɚ / aɪə", "fire (rhotic)"),
    "aU": ("AW", "aʊ", "mouth"), "aU@": ("AW", "aʊə", "hour"), "OI": ("OY", "ɔɪ", "choice"),
    "oU": ("OW", "oʊ / əʊ", "goat"), "oU#": ("OW", "oʊ / əʊ", "goat variant"), "@U": ("OW", "əʊ", "goat (old en-gb)"),
    "o:": ("OW", "oː", "goat (monophthong)"), "o": ("OW", "o", "goat (short)"),
    # syllabic consonants
    "@L": ("L", "əl", "little"), "l-": ("L", "l̩", "syllabic l"), "n-": ("N", "n̩", "button"),
    "m-": ("M", "m̩", "rhythm"), "N-": ("NG", "ŋ̩", "syllabic ng"),
    # consonants
    "p": ("P", "p", "pin"), "b": ("B", "b", "bin"), "t": ("T", "t", "tin"), "d": ("D", "d", "din"),
    "k": ("K", "k", "kin"), "g": ("G", "ɡ", "go"), "f": ("F", "f", "fan"), "v": ("V", "v", "van"),
    "T": ("TH", "θ", "thin"), "D": ("DH", "ð", "this"), "s": ("S", "s", "sun"), "z": ("Z", "z", "zoo"),
    "S": ("SH", "ʃ", "ship"), "Z": ("ZH", "ʒ", "measure"), "h": ("HH", "h", "hat"), "tS": ("CH", "tʃ", "church"),
    "dZ": ("JH", "dʒ", "judge"), "m": ("M", "m", "man"), "n": ("N", "n", "no"), "N": ("NG", "ŋ", "sing"),
    "l": ("L", "l", "let"), "r": ("R", "ɹ", "red"), "j": ("Y", "j", "yes"), "w": ("W", "w", "wet"),
    "t#": ("T", "ɾ", "better (en-us flap)"), "t2": ("T", "t", "t variant"), "t[": ("T", "t̪", "bath (en-029)"),
    "?": ("T", "ʔ", "button (en-us glottal t)"), "d#": ("D", "d / t", "d variant"), "d[": ("D", "d̪", "dental d"),
    "z#": ("Z", "z / s", "plural -s"), "z/2": ("Z", "z / s", "z variant"), "r-": ("R", "ɹ", "linking r: far away"),
    "r/": ("R", "r / ɹ", "r (en-sc, en-us)"), "l/": ("L", "l", "l variant"), "l/2": ("L", "l", "l (en-us-nyc)"),
    "l/3": ("L", "l", "l variant"), "l#": ("L", "ɬ", "voiceless l"), "w#": ("W", "ʍ", "which (en-sc)"),
    "x": ("K", "x", "loch"), "C": ("HH", "ç", "huge (some accents)"),
}
#: espeak-ng English mnemonic -> ARPABET_39 phone.
ESPEAK_TO_ARPABET: dict[str, str] = {k: v[0] for k, v in _ESPEAK.items()}
#: TIMIT / ARPAbet labels outside the 39 (upper case) -> ARPABET_39 phone or ``sil`` (Lee & Hon folding).
ARPABET_ALIASES: dict[str, str] = {
    "AX": "AH", "AX-H": "AH", "AXR": "ER", "IX": "IH", "UX": "UW", "EL": "L", "EM": "M", "EN": "N", "NX": "N",
    "ENG": "NG", "HV": "HH", "DX": "T", "Q": "T", "BCL": SILENCE, "DCL": SILENCE, "GCL": SILENCE,
    "PCL": SILENCE, "TCL": SILENCE, "KCL": SILENCE, "EPI": SILENCE,
    "BRTH": SILENCE,  # Festival's radio phone set: a breath (its other silences, pau and h#, are SILENCE_LABELS)
}
_STRESS = re.compile(r"^([A-Za-z-]+)[012]$")


class UnknownPhoneError(UsageError):
    """A phone label that no table knows (or that is ambiguous under ``source="auto"``)."""


def _is_silence(label: str) -> bool:
    return label.strip().lower() in SILENCE_LABELS  # "", sil, SIL, sp, spn, pau, h#...


def _espeak(label: str) -> str | None:
    return ESPEAK_TO_ARPABET.get(label.strip("',%="))  # stress marks, if a tool kept them


def _arpabet(label: str) -> str | None:
    m = _STRESS.match(label)
    key = (m.group(1) if m else label).upper()
    return key if key in ARPABET_39 else ARPABET_ALIASES.get(key)


_MAPPERS = {"espeak": _espeak, "arpabet": _arpabet}


def _unknown(label: str, source: str, path: PathLike | None) -> UnknownPhoneError:
    where = f"{path}: " if path is not None else ""
    return UnknownPhoneError(
        f"{where}phone label {label!r} is not a known {source} phone; add it to ESPEAK_TO_ARPABET / "
        "ARPABET_ALIASES in audiolvm/data/phones.py, or pass a fallback label (--unknown-phone)"
    )


def map_phone(label: str, source: str = "auto", fallback: str | None = None, path: PathLike | None = None) -> str:
    """The :data:`PHONES` class of one alignment label (silence labels give ``"sil"``).

    Args:
        label: e.g. ``"aU"`` (espeak-ng), ``"AH0"`` (ARPAbet), ``""`` / ``"sp"`` (silence).
        source: ``"espeak"``, ``"arpabet"``, or ``"auto"`` (whichever table knows the label; a label the two
            tables read differently, such as ``"T"``, is an error: pass the source or use :func:`map_tier`).
        fallback: returned for an unknown label instead of raising :class:`UnknownPhoneError`.
        path: the file the label came from, for error messages.
    """
    if source not in SOURCES:
        raise UsageError(f"source={source!r} is unknown; use one of {SOURCES}")
    if _is_silence(label):
        return SILENCE
    if source != "auto":
        mapped = _MAPPERS[source](label)
    else:
        found = {name: fn(label) for name, fn in _MAPPERS.items()}
        known = {v for v in found.values() if v is not None}
        if len(known) > 1:
            where = f"{path}: " if path is not None else ""
            raise UnknownPhoneError(f"{where}phone label {label!r} is ambiguous ({found}); pass source='espeak' "
                                    "or source='arpabet', or map the whole tier with map_tier")
        mapped = known.pop() if known else None
    if mapped is None:
        if fallback is None:
            raise _unknown(label, source if source != "auto" else "espeak-ng or ARPAbet", path)
        return fallback
    return mapped


def detect_source(labels: Iterable[str]) -> str:
    """``"espeak"`` or ``"arpabet"``: the table that knows more of the distinct ``labels`` (silence ignored);
    espeak on a tie."""
    distinct = {lab for lab in labels if not _is_silence(lab)}
    known = {name: sum(fn(lab) is not None for lab in distinct) for name, fn in _MAPPERS.items()}
    if known["arpabet"] > known["espeak"]:
        return "arpabet"
    return "espeak"


def map_tier(tier: Tier, source: str = "auto", fallback: str | None = None, path: PathLike | None = None) -> Tier:
    """A copy of ``tier`` with every label mapped to :data:`PHONES` (source detected once for the tier)."""
    if source == "auto":
        source = detect_source(tier.labels)
    return Tier(tier.name, [Interval(iv.start, iv.end, map_phone(iv.label, source, fallback, path)) for iv in tier])


def frame_labels_majority(tier: Tier, num_frames: int, hop_seconds: float, silence_label: str = SILENCE) -> list[str]:
    """The label covering the largest part of each frame window ``[i * hop, (i + 1) * hop)``.

    Gaps between intervals, time past the tier's end and intervals labelled with a silence label
    (:data:`SILENCE_LABELS` or ``silence_label``) all count as ``silence_label``, summed over the window.
    Ties (within 1e-6 of a window) go to the label that starts earliest in the window.
    """
    if num_frames <= 0:
        return []
    pieces = _partition(tier, num_frames * hop_seconds, silence_label)
    names = sorted({p[2] for p in pieces})
    index = {name: i for i, name in enumerate(names)}
    starts = np.array([p[0] for p in pieces], dtype=np.float64)  # (I,)
    ends = np.array([p[1] for p in pieces], dtype=np.float64)  # (I,)
    ids = np.array([index[p[2]] for p in pieces], dtype=np.int64)  # (I,)
    first = np.clip(np.floor(starts / hop_seconds).astype(np.int64), 0, num_frames)  # (I,)
    last = np.clip(np.ceil(ends / hop_seconds).astype(np.int64), 0, num_frames)  # (I,) exclusive
    counts = np.maximum(last - first, 0)  # (I,) frames each piece touches
    piece = np.repeat(np.arange(len(pieces)), counts)  # (P,) one row per (piece, frame) pair
    frame = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())  # (P,)
    lo = frame * hop_seconds  # (P,) window starts
    onset = np.maximum(starts[piece], lo)  # (P,)
    cover = np.minimum(ends[piece], lo + hop_seconds) - onset  # (P,) seconds of the window covered
    keep = cover > 0
    frame, piece, onset, cover = frame[keep], piece[keep], onset[keep], cover[keep]
    table = np.zeros((num_frames, len(names)))  # (N, L) seconds covered per label
    begin = np.full((num_frames, len(names)), np.inf)  # (N, L) earliest onset per label
    np.add.at(table, (frame, ids[piece]), cover)
    np.minimum.at(begin, (frame, ids[piece]), onset)
    tied = table >= table.max(1, keepdims=True) - 1e-6 * hop_seconds  # (N, L)
    return [names[i] for i in np.where(tied, begin, np.inf).argmin(1).tolist()]


def _partition(tier: Tier, end: float, silence_label: str) -> list[tuple[float, float, str]]:
    """``(start, end, label)`` pieces that tile ``[0, max(end, tier end)]``: silence labels become
    ``silence_label`` and every gap becomes a ``silence_label`` piece."""
    silence = SILENCE_LABELS | {silence_label}
    out, t = [], 0.0
    for iv in tier:
        if iv.end <= iv.start:
            continue
        if iv.start > t:
            out.append((t, iv.start, silence_label))
        out.append((max(iv.start, t), iv.end, silence_label if iv.label in silence else iv.label))
        t = iv.end
    if end > t:
        out.append((t, end, silence_label))
    return out


# ----------------------------------------------------------------------------- alignment files


def find_alignment(audio: PathLike) -> Path | None:
    """The alignment beside an audio file: same stem with ``.TextGrid``, ``.lab``, ``.csv`` or TIMIT ``.PHN`` (first
    found; the lower-case suffix too)."""
    audio = Path(audio)
    for suffix in ALIGNMENT_SUFFIXES:
        for candidate in (audio.with_suffix(suffix), audio.with_suffix(suffix.lower())):
            if candidate.is_file():
                return candidate
    return None


def load_phone_tier(audio: PathLike, source: str = "auto", fallback: str | None = None) -> Tier:
    """The ``phones`` tier of the alignment beside ``audio``, mapped to :data:`PHONES`."""
    path = find_alignment(audio)
    if path is None:
        names = ", ".join(Path(audio).stem + s for s in ALIGNMENT_SUFFIXES)
        raise MissingFileError(
            f"{audio}: no alignment beside it (looked for {names}); "
            "put a TextGrid (MFA layout, tier 'phones'), HTS .lab (mono or full-context), TIMIT .PHN or "
            "start,end,label CSV with the same stem next to it"
        )
    alignment = load_alignment(path)
    if "phones" not in alignment.tiers:
        raise UsageError(f"{path}: no 'phones' tier (tiers: {sorted(alignment.tiers)}); name the phone tier 'phones'")
    return map_tier(alignment.phones, source, fallback, path)


def inventory_markdown() -> str:
    """``docs/phones.md``: the inventory and the espeak-ng and ARPAbet/TIMIT mapping tables."""
    lines = ["# Phone inventory for probing", "",
             "Generated by `audiolvm.data.phones.inventory_markdown()`; see that module's docstring.", "",
             f"**{len(PHONES)} classes**: the 39 CMUdict ARPAbet phones and `{SILENCE}`.", "",
             "| class | kind | espeak-ng mnemonics | ARPAbet/TIMIT aliases |", "|:--|:--|:--|:--|"]
    for phone in PHONES:
        kind = "vowel" if phone in ARPABET_VOWELS else "consonant" if phone in ARPABET_CONSONANTS else "silence"
        espeak = ", ".join(f"`{k}`" for k, v in ESPEAK_TO_ARPABET.items() if v == phone) or "-"
        if phone == SILENCE:
            espeak = "pauses: " + ", ".join(f"`{s}`" for s in sorted(SILENCE_LABELS))
        aliases = ", ".join(f"`{k}`" for k, v in ARPABET_ALIASES.items() if v == phone) or "-"
        lines.append(f"| `{phone}` | {kind} | {espeak} | {aliases} |")
    lines += ["", "## espeak-ng English mnemonics", "",
              "IPA as espeak-ng 1.51 renders the phoneme (en-us / en-gb-x-rp where they differ).", "",
              "| espeak-ng | ARPAbet | IPA | example |", "|:--|:--|:--|:--|"]
    lines += [f"| `{k}` | {arpa} | {ipa} | {example} |" for k, (arpa, ipa, example) in _ESPEAK.items()]
    return "\n".join(lines) + "\n"
