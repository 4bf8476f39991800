"""Render sentences with Festival's diphone voices: speech from voices that no espeak-trained model has heard.

Festival's ``kal_diphone`` and ``ked_diphone`` (two American English male voices) concatenate diphones recorded
from people, so their excitation and spectral detail are a person's, not a formant synthesizer's. The folder is
for checks of how a model trained on the espeak-ng corpus carries over to other voices (e.g.
``benchmarks/pitch_decoders.py --unseen``); it has no alignments.

Layout: ``<out>/<voice>/<voice>_<utt>.wav`` at ``--rate`` Hz (16-bit), one sentence per file.

Needs ``apt-get install festival festvox-kallpc16k festvox-kdlpc16k``.

Usage::

    python data_scripts/make_festival_voices.py --out outputs/festival --sentences 10
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiolvm.core.audio import load_audio, save_audio  # noqa: E402
from data_scripts.make_speech_corpus import make_sentences  # noqa: E402

VOICES = ("kal_diphone", "ked_diphone")  # festvox-kdlpc16k installs ked_diphone
INSTALL_HINT = "apt-get install festival festvox-kallpc16k festvox-kdlpc16k"


def render(voice: str, text: str, path: Path, rate: int) -> None:
    """One sentence by one Festival voice to ``path`` (resampled to ``rate``)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, script = Path(tmp) / "out.wav", Path(tmp) / "say.scm"
        quoted = text.replace("\\", " ").replace('"', " ")
        script.write_text(f'(voice_{voice})\n(set! u (Utterance Text "{quoted}"))\n(utt.synth u)\n'
                          f'(utt.save.wave u "{raw}" \'riff)\n')
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not raw.is_file():
            raise RuntimeError(f"festival failed for voice {voice!r} ({proc.stderr.strip()[-300:]}); is the voice "
                               f"installed? {INSTALL_HINT}")
        save_audio(path, load_audio(raw, sample_rate=rate)[0], rate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/festival", help="output folder")
    p.add_argument("--sentences", type=int, default=10, help="sentences per voice")
    p.add_argument("--rate", type=int, default=16000)
    p.add_argument("--seed", type=int, default=7, help="sentence grammar seed (the espeak corpus uses 0)")
    args = p.parse_args(argv)
    if shutil.which("festival") is None:
        print(f"festival is not installed: {INSTALL_HINT}", file=sys.stderr)
        return 2
    sentences = make_sentences(args.sentences, np.random.default_rng(args.seed))
    for voice in VOICES:
        for i, text in enumerate(sentences, 1):
            render(voice, text, Path(args.out) / voice / f"{voice}_{i:03d}.wav", args.rate)
    print(f"{len(VOICES) * len(sentences)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
