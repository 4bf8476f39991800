"""Generated espeak-ng timbres: new voice variants drawn from the ranges of espeak-ng's own variant files.

espeak-ng has 59 variants whose timbres differ (``make_speech_corpus.TIMBRES``), 16 of them female. A held-out
voice is reached only where the training voices cover the timbre space around it (RESULTS.md, issue 16), so a
corpus that is to test conversion to unseen voices needs more timbres than that, as many female as male. A
variant file (``espeak-ng-data/voices/!v/<name>``) sets the pitch range and, per formant, a frequency, height
and width in percent of the base voice, plus flutter, roughness, voicing, breath and consonant levels; this
module draws those from ranges that span espeak-ng's own files (the male ones near 100 % formant frequency, the
female ones 105-135 %), writes them into a private copy of ``espeak-ng-data`` and keeps a drawn timbre only if it
sounds unlike every timbre kept before it and every catalogue variant, and its F0 says the gender it was drawn as.

Distance between timbres: the RMS difference of the time-averaged natural-log mel spectra (64 bands) of one
sentence read with the same accent, rate and pitch setting, the measure that chose ``TIMBRES`` (>= 0.5 there).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from audiolvm.core.pitch import PitchSettings, median_f0
from data_scripts import espeak

#: where the generated variant files go in a corpus folder (they are also copied into the private data folder)
VARIANT_DIR = "espeak-variants"
VARIANTS = Path("voices") / "!v"  # where espeak-ng-data keeps its variant files
PREFIX = "gen"  # generated variant names: genf001, genm001, ...
MIN_DISTANCE = 0.5  # RMS of log-mel differences, as for TIMBRES
PROBE_TEXT = "The old farmer carried a heavy basket across the road before sunrise."
F0_SPLIT = 150.0  # Hz: median F0 above it reads as female (also the catalogue's rule: make_speech_corpus.TIMBRES)
F0_MARGIN = 0.1  # a generated timbre's median F0 is at least 10 % to its gender's side of the split
N_MELS = 64
T = TypeVar("T")


@dataclass(frozen=True)
class Timbre:
    """One espeak-ng variant file's settings (espeak-ng's docs/voices.md gives each keyword)."""

    name: str
    gender: str  # F | M
    pitch: tuple[int, int]  # base and top of the pitch range, Hz
    formants: tuple[tuple[int, int, int], ...]  # formants 0..8: (frequency, height, width), percent
    flutter: int
    roughness: int
    voicing: int  # percent
    consonants: int  # percent
    breath: tuple[int, ...]  # formants 1..8; all 0 = none

    def variant_file(self) -> str:
        lines = ["language variant", f"name {self.name}", f"gender {'female' if self.gender == 'F' else 'male'}",
                 f"pitch {self.pitch[0]} {self.pitch[1]}", f"flutter {self.flutter}", f"roughness {self.roughness}",
                 f"voicing {self.voicing}", f"consonants {self.consonants}"]
        lines += [f"formant {k} {f} {h} {w}" for k, (f, h, w) in enumerate(self.formants)]
        if any(self.breath):
            lines.append("breath " + " ".join(map(str, self.breath)))
        return "\n".join(lines) + "\n"


def draw_timbre(name: str, gender: str, rng: np.random.Generator) -> Timbre:
    """A random variant of ``gender``: a vocal-tract scale for formants 1-5 with a few percent of jitter each
    (male 0.90-1.04, female 1.06-1.30 of the base voice), heights and widths within what espeak-ng's own files
    use, and a pitch range around the gender's (male base 65-115 Hz, female 140-215 Hz)."""
    if gender not in ("F", "M"):
        raise ValueError(f"draw_timbre: gender {gender!r}; choose F or M")
    female = gender == "F"
    scale = rng.uniform(1.06, 1.30) if female else rng.uniform(0.90, 1.04)
    formants = []
    for k in range(9):
        if k == 0:  # the voicing formant
            freq = rng.uniform(88, 120)
        elif k <= 5:
            freq = 100 * scale * np.exp(rng.normal(0.0, 0.04))
        else:  # the high formants: near the vocal-tract scale, loosely
            freq = 100 * (1 + (scale - 1) * rng.uniform(0.3, 1.0))
        height = rng.uniform(70, 130) if k <= 3 else rng.uniform(50, 120)
        width = rng.uniform(80, 170)
        formants.append((int(round(freq)), int(round(height)), int(round(width))))
    base = rng.uniform(140, 215) if female else rng.uniform(65, 115)
    top = base + (rng.uniform(45, 95) if female else rng.uniform(25, 55))
    breath = tuple(int(v) for v in rng.integers(0, 4, 8)) if rng.random() < 0.3 else (0,) * 8
    return Timbre(name, gender, (int(round(base)), int(round(top))), tuple(formants),
                  flutter=int(rng.integers(0, 13)), roughness=int(rng.integers(0, 6)),
                  voicing=int(rng.integers(85, 131)), consonants=int(rng.integers(80, 126)), breath=breath)


def private_data(folder: Path, timbres: Sequence[Timbre] = ()) -> Path:
    """A copy of this machine's ``espeak-ng-data`` under ``folder`` (about 13 MB) with ``timbres`` added as
    variant files; returns the folder to pass to :func:`data_scripts.espeak.use_data` (in another process: this
    one has read the system's data to find it)."""
    target = folder / "espeak-ng-data"
    if not target.exists():
        shutil.copytree(espeak.data_folder(), target)
    for t in timbres:
        write_variant(target / VARIANTS, t)
    return folder


def write_variant(directory: Path, timbre: Timbre) -> Path:
    """``timbre``'s variant file in ``directory``; returns its path."""
    path = directory / timbre.name
    path.write_text(timbre.variant_file(), encoding="ascii")
    return path


def mean_log_mel(wave: np.ndarray, rate: int) -> np.ndarray:
    """The time average of a waveform's natural-log mel spectrum, ``(N_MELS,)``."""
    import torch

    from audiolvm.core.features import LogMel

    with torch.no_grad():  # eps 1e-6: the floor the catalogue's distances were measured with
        mel = LogMel(rate, n_fft=1024, hop_length=256, n_mels=N_MELS, eps=1e-6)(torch.from_numpy(wave)[None])
    return mel[0].mean(dim=1).numpy()


def timbre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two :func:`mean_log_mel` spectra (natural log): at least :data:`MIN_DISTANCE` apart, two
    timbres count as distinct."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


def probe(voice: str) -> tuple[np.ndarray, float]:
    """(mean log-mel spectrum, median F0 in Hz) of :data:`PROBE_TEXT` read by ``voice`` at pitch 50, 175 wpm."""
    result = espeak.EspeakSynth(voice).synth(PROBE_TEXT)
    wave = result.wave.astype(np.float32) / 32768.0
    return mean_log_mel(wave, result.sample_rate), median_f0(wave, PitchSettings(sample_rate=result.sample_rate))


def balanced_genders(n_female: int, n_male: int, n: int) -> list[str]:
    """Genders of ``n`` more voices for a corpus that has ``n_female`` and ``n_male``: the rarer gender until
    the two are even, then alternating (F first)."""
    out = []
    for _ in range(n):
        gender = "F" if n_female < n_male or (n_female == n_male and (not out or out[-1] == "M")) else "M"
        n_female, n_male = n_female + (gender == "F"), n_male + (gender == "M")
        out.append(gender)
    return out


def generated_names(genders: Sequence[str]) -> list[str]:
    """``genf001, genm001, genf002, ...``: each gender counted on its own."""
    counts = {"F": 0, "M": 0}
    names = []
    for g in genders:
        counts[g] += 1
        names.append(f"{PREFIX}{g.lower()}{counts[g]:03d}")
    return names


def draw_distinct(genders: list[str], catalogue: list[str], seed: int, folder: Path,
                  accent: str = "en-us", max_tries: int = 50) -> list[Timbre]:
    """One timbre per entry of ``genders``, each at least :data:`MIN_DISTANCE` from every ``catalogue`` variant
    and every timbre drawn before it, and with a median F0 10 % to its gender's side of :data:`F0_SPLIT`.
    Synthesizes with the private data folder ``folder`` (made by :func:`private_data`), so call it in a process
    that has not used espeak-ng yet."""
    espeak.use_data(folder)
    variants = folder / "espeak-ng-data" / VARIANTS
    rng = np.random.default_rng(seed)
    kept = [probe(f"{accent}+{v}")[0] for v in catalogue]
    timbres: list[Timbre] = []
    for gender, name in zip(genders, generated_names(genders), strict=True):
        for attempt in range(max_tries):
            trial = draw_timbre(f"{name}-{attempt}", gender, rng)  # a new name each: the library keeps its voice
            path = write_variant(variants, trial)
            spectrum, f0 = probe(f"{accent}+{trial.name}")
            path.unlink()
            if not (f0 > F0_SPLIT * (1 + F0_MARGIN) if gender == "F" else f0 < F0_SPLIT * (1 - F0_MARGIN)):
                continue  # a clear F0 for its gender, as TIMBRES demands of the catalogue's
            if kept and min(timbre_distance(spectrum, k) for k in kept) < MIN_DISTANCE:
                continue
            kept.append(spectrum)
            timbres.append(replace(trial, name=name))
            break
        else:
            raise RuntimeError(f"no distinct {gender} timbre in {max_tries} draws for {name}; the timbre space "
                               f"is crowded: ask for fewer generated voices")
    return timbres


def probe_voices(folder: Path, voices: Sequence[str], accent: str = "en-us") -> dict[str, tuple[np.ndarray, float]]:
    """:func:`probe` of each variant in ``voices`` with the data folder ``folder`` (a process that has not used
    espeak-ng yet: see :func:`in_fresh_process`)."""
    espeak.use_data(folder)
    return {v: probe(f"{accent}+{v}") for v in voices}


def in_fresh_process(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a new process forked from a clean server: libespeak-ng reads its data folder once per
    process, so whatever uses a private data folder runs there."""
    with mp.get_context("forkserver").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(fn, args)
