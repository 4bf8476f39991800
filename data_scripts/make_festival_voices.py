"""Render sentences with Festival's diphone voices: speech from voices that no espeak-trained model has heard.

Festival's ``kal_diphone`` and ``ked_diphone`` (two American English male voices) concatenate diphones recorded
from people, so their excitation and spectral detail are a person's, not a formant synthesizer's. The folder is
for checks of how a model trained on the espeak-ng corpus carries over to other voices (e.g.
``benchmarks/pitch_decoders.py --unseen``); it has no alignments. Rendering is ``data_scripts/festival.py``'s (each
voice at its own prosody, Festival's whole wave); for aligned Festival speakers at varied rates and F0 in the corpus
layout, see ``make_speech_corpus.py --festival-speakers``.

Layout: ``<out>/<voice>/<voice>_<utt>.wav`` at ``--rate`` Hz (16-bit), one sentence per file.

Needs ``apt-get install festival festvox-kallpc16k festvox-kdlpc16k``.

Usage::

    python data_scripts/make_festival_voices.py --out outputs/festival --sentences 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiolvm.core.audio import save_audio  # noqa: E402
from data_scripts.festival import VOICES, FestivalError, check_voices, render_many  # noqa: E402
from data_scripts.make_speech_corpus import make_sentences  # noqa: E402


def render_voice(voice: str, texts: list[str], folder: Path, rate: int) -> None:
    """``texts`` by one Festival voice (its own prosody, Festival's whole wave) to ``<folder>/<voice>_<i>.wav``."""
    for i, result in enumerate(render_many(texts, voice, rate=rate, trim=False), 1):
        save_audio(folder / f"{voice}_{i:03d}.wav", result.wave, rate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/festival", help="output folder")
    p.add_argument("--sentences", type=int, default=10, help="sentences per voice")
    p.add_argument("--rate", type=int, default=16000)
    p.add_argument("--seed", type=int, default=7, help="sentence grammar seed (the espeak corpus uses 0)")
    args = p.parse_args(argv)
    try:
        check_voices(VOICES)
    except FestivalError as exc:
        print(exc, file=sys.stderr)
        return 2
    sentences = make_sentences(args.sentences, np.random.default_rng(args.seed))
    for voice in VOICES:
        render_voice(voice, sentences, Path(args.out) / voice, args.rate)
    print(f"{len(VOICES) * len(sentences)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
