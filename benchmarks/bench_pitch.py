"""Benchmark: the F0 extractors of :mod:`audiolvm.core.pitch` (DIO + StoneMask, Harvest, pYIN) on data/speech.

Times each method (with the same clean-up steps) over 2 utterances per speaker, compares every method
with pYIN frame by frame (median |cents| on frames voiced by both, gross pitch errors, voicing
disagreement), and prints each speaker's median F0 from DIO over all its utterances next to its
espeak-ng voice. Single process; the numba JIT of pYIN is warmed up before timing.

    .venv/bin/python benchmarks/bench_pitch.py                 # 2 utterances per speaker
    .venv/bin/python benchmarks/bench_pitch.py --per-speaker 1 --methods dio pyin
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import timed  # noqa: E402

from audiolvm.core.audio import load_audio  # noqa: E402
from audiolvm.core.pitch import PITCH_METHODS, PitchSettings, extract_pitch, hz_to_cents  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GPE_CENTS = 1200 * np.log2(1.2)  # gross pitch error: more than 20% off (about 316 cents)


def speakers(corpus: Path) -> dict[str, tuple[str, list[Path]]]:
    """``{speaker: (voice description, sorted audio files)}`` from the VCTK layout of ``corpus``."""
    voices = {}
    info = corpus / "speaker-info.txt"
    if info.exists():
        for line in info.read_text().splitlines()[1:]:
            parts = line.split()
            if parts:
                voices[parts[0]] = " ".join(p for p in parts if p.startswith("en") or p.startswith("pitch"))
    out = {}
    for folder in sorted((corpus / "wav48_silence_trimmed").iterdir()):
        files = sorted([*folder.glob("*.flac"), *folder.glob("*.wav")])
        if files:
            out[folder.name] = (voices.get(folder.name, ""), files)
    if not out:
        raise SystemExit(f"{corpus}: no audio under wav48_silence_trimmed/<speaker>/; run data_scripts first")
    return out


def agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, int, int]:
    """(|cents| of ``a`` vs ``b`` on frames voiced by both, frames whose voicing differs, frames)."""
    (fa, va), (fb, vb) = a, b
    both = va & vb
    return np.abs(hz_to_cents(fa[both], fb[both])), int((va != vb).sum()), len(va)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "speech")
    parser.add_argument("--per-speaker", type=int, default=2, help="utterances per speaker to time and compare")
    parser.add_argument("--methods", nargs="+", default=list(PITCH_METHODS), choices=PITCH_METHODS)
    parser.add_argument("--hop", type=int, default=64)
    args = parser.parse_args()
    spk = speakers(args.corpus)
    sel = [f for _, files in spk.values() for f in files[: args.per_speaker]]
    waves = [load_audio(f, 16000)[0] for f in sel]
    seconds = sum(len(w) for w in waves) / 16000
    print(f"{len(waves)} utterances, {seconds:.1f} s of audio, hop {args.hop} (16 kHz); load {os.getloadavg()}")

    settings = {m: PitchSettings(method=m, hop=args.hop) for m in args.methods}
    for s in settings.values():
        extract_pitch(waves[0][:8000], s)  # imports, numba JIT
    tracks, speed = {}, {}
    for m, s in settings.items():
        tracks[m], wall, other = timed(lambda s=s: [extract_pitch(w, s) for w in waves])
        speed[m] = wall / seconds
        print(f"  timed {m:<8} {wall:7.2f} s wall, other processes kept {other:.2f} cores busy")
    ref = "pyin" if "pyin" in tracks else args.methods[0]
    print(f"\n{'method':<9}{'ms per s':>10}{'vs ' + ref + ' speed':>16}{'voiced':>8}"
          f"{'median |cents|':>16}{'p90 |cents|':>13}{'GPE >20%':>10}{'voicing differs':>17}")
    for m in tracks:
        rows = [agreement(a, b) for a, b in zip(tracks[m], tracks[ref], strict=True)]
        cents, differ, frames = [r[0] for r in rows], sum(r[1] for r in rows), sum(r[2] for r in rows)
        pooled = np.concatenate(cents)
        voiced = sum(int(v.sum()) for _, v in tracks[m]) / frames
        print(f"{m:<9}{1000 * speed[m]:>10.1f}{speed[ref] / speed[m]:>15.1f}x{voiced:>8.3f}"
              f"{np.median(pooled):>16.1f}{np.percentile(pooled, 90):>13.1f}{(pooled > GPE_CENTS).mean():>10.3f}"
              f"{differ / frames:>17.3f}")
    print(f"(cents, GPE and voicing compare each method's frames with {ref}'s.)")
    _speaker_medians(spk, settings.get("dio", PitchSettings(hop=args.hop)))


def _speaker_medians(spk: dict[str, tuple[str, list[Path]]], settings: PitchSettings) -> None:
    """Each speaker's median F0 (DIO, over the voiced frames of all its utterances)."""
    print(f"\n{'speaker':<9}{'voice':<36}{'utts':>5}{'median F0 Hz':>14}{'p10-p90 Hz':>14}{'voiced':>8}")
    for name, (voice, files) in spk.items():
        f0, voiced = map(np.concatenate, zip(*[extract_pitch(load_audio(f, 16000)[0], settings) for f in files],
                                            strict=True))
        hz = f0[voiced]
        print(f"{name:<9}{voice:<36}{len(files):>5}{np.median(hz):>14.1f}"
              f"{f'{np.percentile(hz, 10):.0f}-{np.percentile(hz, 90):.0f}':>14}{voiced.mean():>8.3f}")


if __name__ == "__main__":
    main()
