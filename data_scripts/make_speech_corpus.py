"""Generate a speech corpus with exact phone and word alignments, in the VCTK 0.92 layout.

Every "speaker" is an espeak-ng accent+variant voice (e.g. ``en-gb-scotland+f2``) at its own
speaking rate and pitch; every sentence comes from a small seeded grammar. espeak-ng reports
the exact start sample of each phoneme, so the TextGrid beside each FLAC is exact, not aligned.

Optionally (``--festival-speakers N``, default 0) N more speakers f01, f02, ... come from Festival's two
diphone voices (``kal_diphone``, ``ked_diphone``, alternating; ``data_scripts/festival.py``), each at its own
speaking rate (``Duration_Stretch``, ``--festival-stretch-range``) and F0 (the intonation model's target mean,
``--festival-f0-range``; standard deviation mean / 7). Their TextGrids hold Festival's own segment and word
times and its ``radio`` phones (lower-case ARPAbet: ``dh ax d ao g``). They read the shared sentences too, and
are drawn after everything else, so the espeak-ng speakers and their sentences do not change (with ``--speakers``
of 2 or more). Needs ``apt-get install festival festvox-kallpc16k festvox-kdlpc16k``.

Layout (``<spk>`` is e01, e02, ... then f01, f02, ...; ``<utt>`` is 001, 002, ...)::

    wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac      audio at --rate Hz (not 48 kHz)
    wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.TextGrid  MFA layout: "words" and "phones" tiers
    txt/<spk>/<spk>_<utt>.txt                              the sentence
    speaker-info.txt, corpus.json, README.md

Deterministic under ``--seed``: each speaker is synthesized in a fresh process, because
espeak-ng carries state (pitch flutter, noise) from one utterance to the next.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiolvm.core.audio import quantize, resample, save_audio  # noqa: E402
from audiolvm.data.alignments import Alignment, Interval, Tier, merge_silence, write_textgrid  # noqa: E402
from data_scripts import timbres as generated  # noqa: E402
from data_scripts.espeak import SAMPLE_RATE, EspeakSynth, Synthesis, espeak_version, use_data  # noqa: E402
from data_scripts.festival import (  # noqa: E402
    INSTALL_HINT,
    VOICE_RATE,
    VOICES,
    FestivalError,
    Prosody,
    Rendering,
    check_voices,
    festival_version,
    render_many,
)

AUDIO_DIR, TEXT_DIR = "wav48_silence_trimmed", "txt"
#: espeak-ng accent -> (VCTK-style ACCENTS column, REGION column; one token each)
ACCENTS: dict[str, tuple[str, str]] = {
    "en-us": ("American", "USA"),
    "en-gb": ("English", "England"),
    "en-gb-scotland": ("Scottish", "Scotland"),
    "en-gb-x-rp": ("English", "ReceivedPronunciation"),
    "en-gb-x-gbclan": ("English", "Lancashire"),
    "en-gb-x-gbcwmd": ("English", "WestMidlands"),
    "en-029": ("Caribbean", "WestIndies"),
    "en-us-nyc": ("American", "NewYork"),
}
VARIANTS = {"M": [f"m{i}" for i in range(1, 8)], "F": [f"f{i}" for i in range(1, 6)]}
MAX_SPEAKERS = 2 * len(ACCENTS) * len(VARIANTS["F"])  # gender-balanced, distinct voices
#: ``--timbres unique``: espeak-ng variants (voices/!v) whose time-averaged log-mel spectra on one sentence (same
#: accent, rate and text) differ from every other's by >= 0.5 (RMS of natural-log mel energies, 64 bands; m3 and
#: m6 differ by 0.8, klatt and caleb by 0.0, iven2 and iven3 by 0.27). Left out: the unvoiced (croak, whisper,
#: whisperf), the mostly unvoiced (announcer, david), robots (robosoft*, UniRobot, anikaRobot, Demonic, Tweaky)
#: and near-copies of a kept variant. Gender by the median F0 of a sentence at pitch 50 (above
#: ``TIMBRE_F0_SPLIT``: F; the files of shelby and Zac say M, at 182 and 355 Hz); within 10% of the split, as the
#: variant file states it (Nguyen: 151 Hz, M).
TIMBRES = {
    "F": "f1 f2 f3 f4 f5 Alicia Andrea Annie anika aunty belinda grandma linda shelby steph zac".split(),
    "M": ("m1 m2 m3 m4 m5 m6 m7 m8 Andy AnxiousAndy Denis Diogo Gene Hugo Jacky Lee Marco Mario Michael Nguyen "
          "RicishayMax Storm adam antonio benjamin boris ed edward grandpa iven iven4 kaukovalta klatt4 marcelo "
          "norbert pablo paul pedro quincy rob sandro travis victor").split(),
}
TIMBRE_F0_SPLIT = generated.F0_SPLIT  # Hz
MAX_UNIQUE_SPEAKERS = sum(len(v) for v in TIMBRES.values())
#: ``--timbres generated``: the unique timbres, then voices of timbres drawn by ``data_scripts/timbres.py``
MAX_GENERATED_SPEAKERS = 200
TIMBRE_SEED = 0x71B2E  # the generated timbres' own random stream, derived from --seed
MAX_FESTIVAL_SPEAKERS = 99  # f01..f99
FESTIVAL_ACCENT = ("American", "USA")  # kal_diphone and ked_diphone: American English men
FESTIVAL_F0_STD_RATIO = 7.0  # target_f0_std = target_f0_mean / 7 (the voices' own: 105 Hz / 14-15 Hz)

# ----------------------------------------------------------------------------- sentence grammar
NAMES = "Anna Peter Maria David Sarah Thomas Emily James Laura Daniel Helen Robert Alice Martin Grace".split()
NOUNS = "farmer teacher doctor sailor painter baker driver student pilot neighbour gardener singer".split()
THINGS = "boat letter window basket bicycle garden lamp kettle blanket ladder bottle jacket picture".split()
ANIMALS = "dogs cats horses rabbits geese sheep foxes ducks goats birds".split()
ADJECTIVES = "old small red green heavy quiet bright yellow wooden broken clean warm blue tiny".split()
VERBS = "painted carried found washed bought sold opened fixed moved cleaned dropped borrowed".split()
BASE_VERBS = "paint carry find wash buy sell open fix move clean drop borrow".split()
INTRANSITIVE = "waited slept played rested gathered stood walked".split()
PLACES = (
    "near the river|by the station|in the kitchen|behind the church|at the market|"
    "under the bridge|on the hill|beside the harbour|in the village|across the road"
).split("|")
TIMES = "on Monday|last winter|this morning|after dinner|before sunrise|every evening|on Friday".split("|")
NUMBERS = "two three four five six seven eight nine ten eleven twelve twenty".split()


def _subject(rng: np.random.Generator) -> str:
    if rng.random() < 0.35:
        return str(rng.choice(NAMES))
    adjective = f"{rng.choice(ADJECTIVES)} " if rng.random() < 0.5 else ""
    return f"the {adjective}{rng.choice(NOUNS)}"


def _object(rng: np.random.Generator) -> str:
    article = "the" if rng.random() < 0.5 else "a"
    thing = f"{rng.choice(ADJECTIVES)} {rng.choice(THINGS)}" if rng.random() < 0.6 else rng.choice(THINGS)
    if article == "a" and thing[0] in "aeiou":
        article = "an"
    return f"{article} {thing}"


def make_sentence(rng: np.random.Generator) -> str:
    """One sentence from a small grammar (9 templates, spelled-out numbers, ASCII only)."""
    c = rng.choice
    templates = [
        lambda: f"{_subject(rng)} {c(VERBS)} {_object(rng)} {c(PLACES)}.",
        lambda: f"{c(NUMBERS)} {c(ADJECTIVES)} {c(ANIMALS)} {c(INTRANSITIVE)} {c(PLACES)}.",
        lambda: f"{c(NAMES)} {c(VERBS)} {c(NUMBERS)} {c(ADJECTIVES)} {c(THINGS)}s {c(TIMES)}.",
        lambda: f"did {_subject(rng)} {c(BASE_VERBS)} {_object(rng)} {c(TIMES)}?",
        lambda: f"{c(TIMES)}, {_subject(rng)} {c(VERBS)} {_object(rng)}.",
        lambda: f"{c(NAMES)} and {_subject(rng)} {c(INTRANSITIVE)} {c(PLACES)}.",
        lambda: f"{c(NAMES)} {c(VERBS)} {_object(rng)}.",
        lambda: f"{c(NUMBERS)} {c(ANIMALS)} {c(INTRANSITIVE)} {c(TIMES)}.",
        lambda: f"{_subject(rng)} {c(INTRANSITIVE)} {c(PLACES)}.",
    ]
    text = templates[int(rng.integers(len(templates)))]()
    return text[0].upper() + text[1:]


def make_sentences(n: int, rng: np.random.Generator, min_words: int = 5, max_words: int = 8) -> list[str]:
    """``n`` distinct sentences of ``min_words`` to ``max_words`` words."""
    out: dict[str, None] = {}
    for _ in range(200 * n + 100):
        if len(out) == n:
            return list(out)
        text = make_sentence(rng)
        if min_words <= len(text.split()) <= max_words:
            out.setdefault(text)
    msg = f"only {len(out)} distinct sentences of {min_words}-{max_words} words (asked for {n})"
    raise ValueError(f"{msg}; widen --min-words/--max-words or ask for fewer sentences")


@dataclass(frozen=True)
class Speaker:
    """A corpus speaker: an espeak-ng voice with its own rate (wpm) and pitch (0-100)."""

    id: str
    voice: str
    gender: str
    accent: str
    region: str
    age: int
    wpm: int
    pitch: int


def choose_speakers(
    n: int, rng: np.random.Generator, wpm_range: tuple[int, int], pitch_range: tuple[int, int]
) -> list[Speaker]:
    """``n`` distinct voices: genders alternate (F, M, ...), each run of 8 covers every accent,
    and an accent's speakers alternate gender from one run to the next."""
    if not 1 <= n <= MAX_SPEAKERS:
        raise ValueError(f"--speakers {n}: choose 1..{MAX_SPEAKERS} (distinct, gender-balanced voices)")
    accents = [list(ACCENTS)[i] for i in rng.permutation(len(ACCENTS))]
    variants = {g: [vs[i] for i in rng.permutation(len(vs))] for g, vs in VARIANTS.items()}
    used: set[tuple[str, str]] = set()
    speakers: list[Speaker] = []
    for i in range(n):
        accent = accents[i % len(accents)]
        gender = "FM"[(i + i // len(accents)) % 2]
        n_before = sum(s.gender == gender for s in speakers)
        variant = _pick_variant(variants[gender], n_before, accent, used)
        wpm = int(rng.integers(wpm_range[0], wpm_range[1] + 1))
        pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
        age = int(rng.integers(20, 41))  # placeholder: espeak-ng voices have no age
        accent_name, region = ACCENTS[accent]
        voice = f"{accent}+{variant}"
        speakers.append(Speaker(f"e{i + 1:02d}", voice, gender, accent_name, region, age, wpm, pitch))
    return speakers


def choose_unique_speakers(
    n: int, rng: np.random.Generator, wpm_range: tuple[int, int], pitch_range: tuple[int, int]
) -> list[Speaker]:
    """``n`` voices of which no two share a timbre (``--timbres unique``): each its own variant of ``TIMBRES``,
    genders alternating (F, M, ...) while both pools last, accents cycling as in :func:`choose_speakers`. A voice
    held out of training then has a timbre no training voice has, not only an accent of its own."""
    if not 1 <= n <= MAX_UNIQUE_SPEAKERS:
        raise ValueError(f"--speakers {n} with --timbres unique: choose 1..{MAX_UNIQUE_SPEAKERS}")
    accents = [list(ACCENTS)[i] for i in rng.permutation(len(ACCENTS))]
    pools = {g: [vs[i] for i in rng.permutation(len(vs))] for g, vs in TIMBRES.items()}
    speakers: list[Speaker] = []
    for i in range(n):
        gender = "FM"[i % 2] if pools["F"] and pools["M"] else ("F" if pools["F"] else "M")
        variant, accent = pools[gender].pop(0), accents[i % len(accents)]
        wpm = int(rng.integers(wpm_range[0], wpm_range[1] + 1))
        pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
        age = int(rng.integers(20, 41))  # placeholder: espeak-ng voices have no age
        accent_name, region = ACCENTS[accent]
        speakers.append(Speaker(f"e{i + 1:02d}", f"{accent}+{variant}", gender, accent_name, region, age, wpm, pitch))
    return speakers


def choose_generated_speakers(
    first: int, genders: list[str], rng: np.random.Generator, wpm_range: tuple[int, int], pitch_range: tuple[int, int]
) -> list[Speaker]:
    """Voices e<first>, ... whose variants are the generated timbres ``genf001, genm001, ...`` (named in the order
    of ``genders``; :func:`data_scripts.timbres.generated_names`), accents cycling in a fresh order."""
    accents = [list(ACCENTS)[i] for i in rng.permutation(len(ACCENTS))]
    speakers = []
    for k, (gender, variant) in enumerate(zip(genders, generated.generated_names(genders), strict=True)):
        accent = accents[k % len(accents)]
        wpm = int(rng.integers(wpm_range[0], wpm_range[1] + 1))
        pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
        age = int(rng.integers(20, 41))  # placeholder, as for the other voices
        accent_name, region = ACCENTS[accent]
        speakers.append(Speaker(f"e{first + k:02d}", f"{accent}+{variant}", gender, accent_name, region, age, wpm,
                                pitch))
    return speakers


def draw_timbres(genders: list[str], seed: int, folder: Path) -> list[generated.Timbre]:
    """The generated timbres, drawn in a fresh process (the library reads its data folder once per process)."""
    return generated.in_fresh_process(generated.draw_distinct, genders, TIMBRES["F"] + TIMBRES["M"], seed, folder)


@dataclass(frozen=True)
class FestivalSpeaker:
    """A corpus speaker made from a Festival diphone voice at its own rate and F0."""

    id: str
    voice: str  # kal_diphone | ked_diphone
    gender: str
    accent: str
    region: str
    age: int
    stretch: float  # Duration_Stretch (the voices' own: 1.1; larger is slower)
    f0: int  # intonation target F0 mean, Hz (the voices' own: 105)
    f0_std: float  # intonation target F0 standard deviation, Hz

    @property
    def prosody(self) -> Prosody:
        return Prosody(self.stretch, self.f0, self.f0_std)


def choose_festival_speakers(
    n: int, rng: np.random.Generator, stretch_range: tuple[float, float], f0_range: tuple[int, int]
) -> list[FestivalSpeaker]:
    """``n`` speakers f01, f02, ...: the voices alternate (kal, ked, ...), and the ``m`` speakers of a voice get
    stretches (2 decimals) and F0 means (integer Hz) spread over the ranges: a Latin hypercube, one draw in each
    ``1/m`` of each range, so that two speakers of one voice never sound alike by chance."""
    voices = [VOICES[i % len(VOICES)] for i in range(n)]
    draws: dict[str, list[tuple[float, float]]] = {}
    for voice in VOICES:
        m = voices.count(voice)
        strata = [(rng.permutation(m) + rng.random(m)) / m for _ in range(2)]  # (m,) each, in [0, 1)
        draws[voice] = list(zip(strata[0].tolist(), strata[1].tolist(), strict=True))
    speakers = []
    for i, voice in enumerate(voices):
        u_stretch, u_f0 = draws[voice].pop(0)
        stretch = round(stretch_range[0] + u_stretch * (stretch_range[1] - stretch_range[0]), 2)
        f0 = int(round(f0_range[0] + u_f0 * (f0_range[1] - f0_range[0])))
        age = int(rng.integers(20, 41))  # placeholder, as for the espeak-ng voices
        f0_std = round(f0 / FESTIVAL_F0_STD_RATIO, 1)
        speakers.append(FestivalSpeaker(f"f{i + 1:02d}", voice, "M", *FESTIVAL_ACCENT, age, stretch, f0, f0_std))
    return speakers


def _pick_variant(pool: list[str], start: int, accent: str, used: set[tuple[str, str]]) -> str:
    """The first variant of ``pool`` from ``start`` (cyclically) not yet used with ``accent``."""
    for k in range(len(pool)):
        variant = pool[(start + k) % len(pool)]
        if (accent, variant) not in used:
            used.add((accent, variant))
            return variant
    raise ValueError(f"every variant of {pool} is already used with accent {accent}")


def assign_sentences(sentences: list[str], n_speakers: int, n_each: int, n_shared: int) -> list[list[str]]:
    """Every speaker reads the ``n_shared`` first sentences (same utterance numbers), then its own."""
    own = [sentences[n_shared + s * (n_each - n_shared) :][: n_each - n_shared] for s in range(n_speakers)]
    if any(len(o) < n_each - n_shared for o in own):
        raise ValueError(f"{len(sentences)} sentences are too few for {n_speakers} x {n_each}")
    return [sentences[:n_shared] + o for o in own]


def to_alignment(result: Synthesis) -> Alignment:
    """Phones (pauses as "") and lower-cased words, in seconds: sample / synthesis rate."""
    sr = result.sample_rate
    phones = [Interval(p.start / sr, p.end / sr, "" if p.is_pause else p.symbol) for p in result.phonemes]
    words = [Interval(w.start / sr, w.end / sr, w.text.lower()) for w in result.words]
    tiers = {"words": Tier("words", words), "phones": Tier("phones", merge_silence(phones))}
    return Alignment(tiers, result.wave.size / sr)


def festival_alignment(result: Rendering) -> Alignment:
    """Festival's segments (its radio phones; pauses as "") and lower-cased words, in seconds."""
    phones = [Interval(s.start, s.end, "" if s.is_pause else s.name) for s in result.segments]
    words = [Interval(w.start, w.end, w.name.lower()) for w in result.words]
    tiers = {"words": Tier("words", words), "phones": Tier("phones", merge_silence(phones))}
    return Alignment(tiers, result.duration)


@dataclass(frozen=True)
class FestivalOptions:
    """The optional Festival speakers: how many, and the ranges their rate and F0 are drawn from."""

    speakers: int = 0
    stretch_range: tuple[float, float] = (0.95, 1.25)  # Duration_Stretch (the voices' own: 1.1)
    f0_range: tuple[int, int] = (85, 135)  # target F0 mean, Hz (the voices' own: 105)


@dataclass(frozen=True)
class CorpusOptions:
    """Everything but the counts: per-speaker ranges, sentence lengths, level, parallelism."""

    wpm_range: tuple[int, int] = (155, 190)  # speaking rate, words per minute
    pitch_range: tuple[int, int] = (40, 60)  # espeak pitch 0-100 (50: the voice's own)
    shared_fraction: float = 0.2  # of each speaker's sentences, read by every speaker
    min_words: int = 5  # 5-8 words: about 1.2-3.5 s at 155-190 wpm
    max_words: int = 8
    gain: float = 0.5  # -6 dB: soxr overshoot never clips, and FLAC files get ~9% smaller
    bits: int = 16  # effective resolution; FLAC stores the unused low bits for free (12: -39% size)
    textgrid_digits: int = 7  # time decimals in TextGrids (0.1 us; a sample at 22,050 Hz is 45 us)
    workers: int = 1  # processes; never changes the output


_PROGRESS: mp.Queue | None = None


def _init_worker(progress: mp.Queue) -> None:
    global _PROGRESS
    _PROGRESS = progress


def synth_speaker(
    out: Path, speaker: Speaker | FestivalSpeaker, texts: list[str], rate: int, opts: CorpusOptions,
    espeak_data: Path | None = None,
) -> list[dict]:
    """Synthesize, resample and write every utterance of one speaker; return per-utterance stats.
    ``espeak_data``: a private espeak-ng data folder (with generated variants) for this fresh process."""
    if isinstance(speaker, FestivalSpeaker):
        return synth_festival_speaker(out, speaker, texts, rate, opts)
    if espeak_data is not None:
        use_data(espeak_data)
    synth = EspeakSynth(speaker.voice, speaker.wpm, speaker.pitch)
    stats = []
    for k, text in enumerate(texts, start=1):
        utt = f"{speaker.id}_{k:03d}"
        result = synth.synth(text)
        wave = result.wave.astype(np.float32) * (opts.gain / 32768.0)  # (T,) at 22,050 Hz
        wave = quantize(resample(wave, result.sample_rate, rate), opts.bits)  # (T',) at rate; FLAC: free low bits
        write_utterance(out, speaker.id, utt, text, wave, rate, to_alignment(result), opts)
        stats.append({"utt": utt, "seconds": wave.size / rate, "phones": len(result.phonemes)})
    return stats


def write_utterance(out: Path, speaker: str, utt: str, text: str, wave: np.ndarray, rate: int, alignment: Alignment,
                    opts: CorpusOptions) -> None:
    """One utterance in the VCTK layout: FLAC, TextGrid beside it, the sentence under ``txt/``; counts progress."""
    stem = out / AUDIO_DIR / speaker / f"{utt}_mic1"
    save_audio(stem.with_suffix(".flac"), wave, rate)
    write_textgrid(alignment, stem.with_suffix(".TextGrid"), opts.textgrid_digits)
    txt = out / TEXT_DIR / speaker / f"{utt}.txt"
    txt.parent.mkdir(parents=True, exist_ok=True)
    txt.write_text(text + "\n", encoding="utf-8")
    if _PROGRESS is not None:
        _PROGRESS.put(1)


def synth_festival_speaker(
    out: Path, speaker: FestivalSpeaker, texts: list[str], rate: int, opts: CorpusOptions
) -> list[dict]:
    """:func:`synth_speaker` for a Festival speaker: one festival process renders all its sentences."""
    stats = []
    results = render_many(texts, speaker.voice, speaker.prosody)  # at Festival's 16 kHz, cut at the last segment
    for k, (text, result) in enumerate(zip(texts, results, strict=True), start=1):
        utt = f"{speaker.id}_{k:03d}"
        wave = quantize(resample(result.wave * opts.gain, result.sample_rate, rate), opts.bits)  # (T',) at rate
        write_utterance(out, speaker.id, utt, text, wave, rate, festival_alignment(result), opts)
        stats.append({"utt": utt, "seconds": wave.size / rate, "phones": len(result.segments)})
    return stats


def _synthesize_all(
    out: Path, jobs: list[tuple[Speaker | FestivalSpeaker, list[str]]], rate: int, opts: CorpusOptions,
    espeak_data: Path | None = None,
) -> list[dict]:
    """Synthesize each speaker in a fresh process (espeak-ng state carries over between utterances,
    so this is what makes the output independent of ``workers``); tqdm counts utterances."""
    from tqdm import tqdm

    ctx = mp.get_context("forkserver")  # workers fork from a clean server: no inherited espeak state
    ctx.set_forkserver_preload([__name__])
    progress = ctx.Queue()
    total = sum(len(texts) for _, texts in jobs)
    with ctx.Pool(
        max(1, min(opts.workers, len(jobs))), _init_worker, (progress,), maxtasksperchild=1
    ) as pool:
        pending = [pool.apply_async(synth_speaker, (out, spk, texts, rate, opts, espeak_data)) for spk, texts in jobs]
        with tqdm(total=total, desc="synthesizing", unit="utt") as bar:
            while bar.n < total:
                try:
                    bar.update(progress.get(timeout=0.2))
                except queue.Empty:
                    if all(p.ready() for p in pending):
                        break  # a worker failed; p.get() below raises its error
        return [row for p in pending for row in p.get()]  # .get() re-raises a worker's error


def write_speaker_info(path: Path, speakers: list[Speaker | FestivalSpeaker]) -> None:
    """VCTK 0.92 ``speaker-info.txt``; the voice, rate and pitch (espeak-ng) or stretch and F0 (Festival) go in
    COMMENTS."""
    lines = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS "]
    for s in speakers:
        if isinstance(s, FestivalSpeaker):
            voice = f"festival {s.voice} stretch {s.stretch:g} f0 {s.f0}"
        else:
            voice = f"espeak-ng {s.voice} {s.wpm}wpm pitch{s.pitch}"
        lines.append(f"{s.id}  {s.age}  {s.gender}    {s.accent}  {s.region}  {voice}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


README_HEAD = """# Generated speech corpus (espeak-ng {espeak}), VCTK 0.92 layout

Synthetic English speech with exact phone and word alignments, made by
`data_scripts/make_speech_corpus.py` (all settings in `corpus.json`). Each speaker is an espeak-ng
accent+variant voice at its own rate and pitch (see `speaker-info.txt`; AGE is a placeholder).

- `wav48_silence_trimmed/<spk>/<spk>_<utt>_mic1.flac`: mono FLAC at **{rate} Hz** (not 48 kHz, despite
  VCTK's folder name), espeak-ng's output times {gain}, rounded to {bits} effective bits.
- `..._mic1.TextGrid` beside it: Montreal Forced Aligner layout, tier "words" (lower case) and tier
  "phones" (espeak-ng mnemonics such as `aU`, `@2`, `t#`; pauses are empty labels). Exact times:
  the start sample espeak-ng reports for each phoneme / 22,050 Hz.
- `txt/<spk>/<spk>_<utt>.txt`: the sentence. Utterances 001-{shared:03d} are the same for every speaker.
"""
README_FESTIVAL = """
Speakers {first}-{last} are Festival {festival} diphone voices instead (`data_scripts/festival.py`):
`kal_diphone` and `ked_diphone` (two American English men) in turn, each at its own speaking rate
(`Duration_Stretch` from {stretch_lo:g}-{stretch_hi:g}; the voices' own is 1.1) and F0 (intonation target mean
from {f0_lo}-{f0_hi} Hz, standard deviation mean / 7; the voices' own: 105 / 15 Hz), see `speaker-info.txt`.
Their audio is Festival's 16,000 Hz output cut at the end of its last segment (dropping the overlap-add
tail after the final pause), times {gain}, resampled and rounded like the rest. Their "phones" tier holds
Festival's `radio` phones (lower-case ARPAbet such as `dh`, `ax`, `ao`; pauses are empty labels) with the
segment times Festival built the wave from; `audiolvm.data.phones.load_phone_tier` maps them to the 39
ARPAbet phones. Regenerating them bit-identically also needs the same Festival and voices.
"""
README_TAIL = """
Regenerate (bit-identical with the same espeak-ng, whatever `--workers`): `{command}`
"""


def command_line(flags: dict) -> str:
    """``python data_scripts/make_speech_corpus.py --key value ...`` (tuples become 2 values)."""
    values = {k: " ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in flags.items()}
    return " ".join(["python data_scripts/make_speech_corpus.py"] + [f"--{k} {v}" for k, v in values.items()])


def plan_corpus(
    n_speakers: int, n_sentences: int, seed: int, opts: CorpusOptions, fest: FestivalOptions, timbres: str
) -> tuple[list[Speaker | FestivalSpeaker], list[list[str]], list[str], int]:
    """(speakers, each one's sentences, the genders of the generated timbres, the number of shared sentences):
    every random draw of a corpus but the generated timbres' own, from the one random source ``seed``."""
    rng = np.random.default_rng(seed)
    n_catalogue = min(n_speakers, MAX_UNIQUE_SPEAKERS) if timbres == "generated" else n_speakers
    choose = choose_speakers if timbres == "accent" else choose_unique_speakers
    speakers: list[Speaker | FestivalSpeaker] = list(choose(n_catalogue, rng, opts.wpm_range, opts.pitch_range))
    n_total = n_speakers + fest.speakers
    n_shared = min(n_sentences, max(1, round(opts.shared_fraction * n_sentences))) if n_total > 1 else 0
    pool = make_sentences(n_shared + n_total * (n_sentences - n_shared), rng, opts.min_words, opts.max_words)
    # drawn after the sentences: the catalogue's speakers and their sentences do not depend on how many voices are
    # generated, nor on --festival-speakers
    n_female, n_male = sum(s.gender == "F" for s in speakers), sum(s.gender == "M" for s in speakers)
    genders = generated.balanced_genders(n_female, n_male, n_speakers - n_catalogue)
    speakers += choose_generated_speakers(n_catalogue + 1, genders, rng, opts.wpm_range, opts.pitch_range)
    speakers += choose_festival_speakers(fest.speakers, rng, fest.stretch_range, fest.f0_range)
    return speakers, assign_sentences(pool, n_total, n_sentences, n_shared), genders, n_shared


def generate_corpus(
    out: str | Path,
    n_speakers: int = 12,
    n_sentences: int = 18,
    rate: int = 16000,
    seed: int = 0,
    options: CorpusOptions | None = None,
    festival: FestivalOptions | None = None,
    timbres: str = "accent",
) -> dict:
    """Write the corpus under ``out`` and return the summary that is also saved as ``corpus.json``.

    ``timbres``: ``accent`` (the default) combines accents with the 12 standard variants, so voices may share a
    variant; ``unique`` gives every espeak-ng voice a variant of its own (:func:`choose_unique_speakers`);
    ``generated`` does too, and past the 59 unique variants draws new ones (``data_scripts/timbres.py``), genders
    balancing the corpus; their variant files go in ``espeak-variants/``.
    ``festival`` adds ``festival.speakers`` Festival speakers after the ``n_speakers`` espeak-ng ones (default:
    none, and then nothing differs from a corpus made before the option existed)."""
    out, opts, fest = Path(out), options or CorpusOptions(), festival or FestivalOptions()
    check_settings(n_speakers, n_sentences, rate, opts, fest, timbres)
    if fest.speakers:
        check_voices(VOICES)  # before anything is written; names the apt packages
    speakers, texts, genders, n_shared = plan_corpus(n_speakers, n_sentences, seed, opts, fest, timbres)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(seed=seed, rate=rate, n_speakers=n_speakers, n_sentences=n_sentences, n_shared=n_shared)
    if timbres != "accent":  # corpora made before the option keep their corpus.json
        settings["timbres"] = timbres
    with tempfile.TemporaryDirectory(prefix="espeak-data-") as private:
        data = None
        if genders:
            data = generated.private_data(Path(private))
            drawn = draw_timbres(genders, seed + TIMBRE_SEED, data)
            generated.private_data(data, drawn)
            (out / generated.VARIANT_DIR).mkdir(exist_ok=True)
            for timbre in drawn:
                generated.write_variant(out / generated.VARIANT_DIR, timbre)
            settings["generated_timbres"] = {t.name: asdict(t) for t in drawn}
        stats = _synthesize_all(out, list(zip(speakers, texts, strict=True)), rate, opts, data)
    write_speaker_info(out / "speaker-info.txt", speakers)
    return write_summary(out, settings, opts, speakers, stats, fest)


def write_summary(
    out: Path,
    settings: dict,
    opts: CorpusOptions,
    speakers: list[Speaker | FestivalSpeaker],
    stats: list,
    festival: FestivalOptions | None = None,
) -> dict:
    """Write ``corpus.json`` (settings, voices, totals) and ``README.md``; return the summary. The Festival
    flags, the ``festival`` entry and the README's Festival paragraph appear only with Festival speakers."""
    options_json = {k: v for k, v in asdict(opts).items() if k != "workers"}
    flags = dict(out=out, speakers=settings["n_speakers"], sentences=settings["n_sentences"])
    flags.update(rate=settings["rate"], seed=settings["seed"], **options_json)
    if "timbres" in settings:
        flags["timbres"] = settings["timbres"]
    festival_json, festival_text = {}, ""
    if festival is not None and festival.speakers:
        fest, version = asdict(festival), festival_version()
        flags.update({f"festival_{k}": v for k, v in fest.items()})
        festival_json = {"festival": {"version": version, "voices": list(VOICES), "synthesis_rate": VOICE_RATE,
                                      **fest, "f0_std": f"f0 / {FESTIVAL_F0_STD_RATIO:g}"}}  # fmt: skip
        ids = [s.id for s in speakers if isinstance(s, FestivalSpeaker)]
        (stretch_lo, stretch_hi), (f0_lo, f0_hi) = festival.stretch_range, festival.f0_range
        festival_text = README_FESTIVAL.format(first=ids[0], last=ids[-1], festival=version, stretch_lo=stretch_lo,
                                               stretch_hi=stretch_hi, f0_lo=f0_lo, f0_hi=f0_hi,
                                               gain=opts.gain)  # fmt: skip
    summary = {
        "generator": "data_scripts/make_speech_corpus.py",
        "command": command_line({k.replace("_", "-"): v for k, v in flags.items()}),
        "espeak_ng": espeak_version(),
        **settings,
        "synthesis_rate": SAMPLE_RATE,
        "options": options_json,
        **festival_json,
        "speakers": {s.id: asdict(s) for s in speakers},
        "utterances": len(stats),
        "seconds": round(sum(r["seconds"] for r in stats), 3),
        "phones": sum(r["phones"] for r in stats),
    }
    (out / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    extra = dict(espeak=summary["espeak_ng"], shared=settings["n_shared"], command=summary["command"])
    text = README_HEAD.format(**extra, **options_json, **settings) + festival_text + README_TAIL.format(**extra)
    (out / "README.md").write_text(text, encoding="utf-8")
    return summary


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the module docstring's layout."""


class SettingsError(ValueError):
    """A flag out of range: the message names it and the range."""


#: the most --speakers each --timbres allows
MOST_SPEAKERS = {"accent": MAX_SPEAKERS, "unique": MAX_UNIQUE_SPEAKERS,
                 "generated": MAX_UNIQUE_SPEAKERS + MAX_GENERATED_SPEAKERS}


def check_settings(
    n_speakers: int, n_sentences: int, rate: int, o: CorpusOptions, f: FestivalOptions | None = None,
    timbres: str = "accent",
) -> None:
    """Fail before synthesizing anything, naming the flag to fix (:class:`SettingsError`)."""
    wpm, pitch, words = o.wpm_range, o.pitch_range, (o.min_words, o.max_words)
    f = f or FestivalOptions()
    stretch, f0 = f.stretch_range, f.f0_range
    if timbres not in MOST_SPEAKERS:
        raise SettingsError(f"--timbres {timbres!r}: choose one of {', '.join(MOST_SPEAKERS)}")
    most = MOST_SPEAKERS[timbres]
    checks = [
        (1 <= n_speakers <= most, f"--speakers {n_speakers} with --timbres {timbres}: choose 1..{most}"),
        (n_sentences >= 1, f"--sentences {n_sentences}: need at least 1"),
        (1000 <= rate <= 192000, f"--rate {rate}: choose a sample rate in Hz, e.g. 16000"),
        (80 <= wpm[0] <= wpm[1] <= 450, f"--wpm-range {wpm}: need 80 <= MIN <= MAX <= 450"),
        (0 <= pitch[0] <= pitch[1] <= 100, f"--pitch-range {pitch}: need 0 <= MIN <= MAX <= 100"),
        (1 <= words[0] <= words[1], f"--min-words/--max-words {words}: need 1 <= MIN <= MAX"),
        (0.0 <= o.shared_fraction <= 1.0, f"--shared-fraction {o.shared_fraction}: need 0..1"),
        (8 <= o.bits <= 16, f"--bits {o.bits}: choose 8..16 effective bits"),
        (0 <= f.speakers <= MAX_FESTIVAL_SPEAKERS,
         f"--festival-speakers {f.speakers}: choose 0..{MAX_FESTIVAL_SPEAKERS}"),
        (0.5 <= stretch[0] <= stretch[1] <= 3.0, f"--festival-stretch-range {stretch}: need 0.5 <= MIN <= MAX <= 3"),
        (50 <= f0[0] <= f0[1] <= 300, f"--festival-f0-range {f0}: need 50 <= MIN <= MAX <= 300 (Hz)"),
    ]  # fmt: skip
    problems = [message for ok, message in checks if not ok]
    if problems:
        raise SettingsError("; ".join(problems))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = CorpusOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--speakers", type=int, default=12, help=f"number of voices, 1..{MAX_SPEAKERS}")
    p.add_argument("--sentences", type=int, default=18, help="utterances per speaker")
    p.add_argument("--timbres", choices=tuple(MOST_SPEAKERS), default="accent",
                   help="accent: accents x the 12 standard variants (voices may share a variant); unique: every "
                        f"voice its own variant of {MAX_UNIQUE_SPEAKERS} (held-out voices then sound new); generated: "
                        f"as unique, then up to {MAX_GENERATED_SPEAKERS} voices of new variants drawn from the "
                        "ranges of espeak-ng's own (data_scripts/timbres.py), genders balancing the corpus")
    p.add_argument("--rate", type=int, default=16000, help="output sample rate in Hz (resampled with soxr)")
    p.add_argument("--seed", type=int, default=0, help="seed for voices, rates, pitches and sentences")
    p.add_argument("--wpm-range", type=int, nargs=2, default=d.wpm_range, metavar=("MIN", "MAX"),
                   help="per-speaker speaking rate range, words per minute")  # fmt: skip
    p.add_argument("--pitch-range", type=int, nargs=2, default=d.pitch_range, metavar=("MIN", "MAX"),
                   help="per-speaker espeak pitch range (0-100, 50 is the voice's default)")  # fmt: skip
    p.add_argument("--shared-fraction", type=float, default=d.shared_fraction,
                   help="fraction of each speaker's sentences read by every speaker")  # fmt: skip
    p.add_argument("--min-words", type=int, default=d.min_words, help="shortest sentence, in words")
    p.add_argument("--max-words", type=int, default=d.max_words, help="longest sentence, in words")
    p.add_argument("--gain", type=float, default=d.gain, help="gain on the synthesizers' output")
    p.add_argument("--bits", type=int, default=d.bits, help="effective bits per sample in the FLAC, 8..16")
    p.add_argument(
        "--textgrid-digits", type=int, default=d.textgrid_digits, help="decimals of TextGrid times"
    )
    p.add_argument("--workers", type=int, default=max(1, (mp.cpu_count() or 1) // 2), help="processes")
    f = FestivalOptions()
    g = p.add_argument_group("Festival speakers (f01, f02, ...; need " + INSTALL_HINT + ")")
    g.add_argument("--festival-speakers", type=int, default=f.speakers,
                   help=f"Festival diphone speakers after the espeak-ng ones (kal, ked, kal, ...), "
                        f"0..{MAX_FESTIVAL_SPEAKERS}")  # fmt: skip
    g.add_argument("--festival-stretch-range", type=float, nargs=2, default=f.stretch_range, metavar=("MIN", "MAX"),
                   help="per-speaker Duration_Stretch range (larger is slower; the voices' own is 1.1)")  # fmt: skip
    g.add_argument("--festival-f0-range", type=int, nargs=2, default=f.f0_range, metavar=("MIN", "MAX"),
                   help="per-speaker target F0 mean range, Hz (the voices' own is 105)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = vars(parse_args(argv))
    opts = CorpusOptions(
        **{f.name: tuple(a[f.name]) if "range" in f.name else a[f.name] for f in fields(CorpusOptions)}
    )
    fest = FestivalOptions(a["festival_speakers"], tuple(a["festival_stretch_range"]), tuple(a["festival_f0_range"]))
    try:
        summary = generate_corpus(a["out"], a["speakers"], a["sentences"], a["rate"], a["seed"], opts, fest,
                                  a["timbres"])
    except (FestivalError, SettingsError) as exc:  # a missing voice or a bad flag: the message names it
        sys.exit(f"make_speech_corpus.py: {exc}")
    n_speakers, n_utts, seconds = len(summary["speakers"]), summary["utterances"], summary["seconds"]
    print(
        f"{a['out']}: {n_speakers} speakers, {n_utts} utterances, {seconds:.1f} s of audio at {a['rate']} Hz"
    )


if __name__ == "__main__":
    # Run through the importable module, so worker processes find every function by its real name.
    from data_scripts.make_speech_corpus import main as _main

    _main()
