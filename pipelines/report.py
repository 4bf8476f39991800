"""One HTML page of a run folder, of the demo's output folder or of a lab folder, to read and listen to in a browser.

For a run: its config and the command that trains it again, the training curves (hover a point for its step and
value), what the commands run on it wrote (evaluate's per-level metrics, evaluate-image, evaluate-vc, probe), and
held-out examples: the original and every level's reconstruction as players, each beside its spectrogram (and
pitch tracks for a pitch-aware model). An audio run without examples gets --examples of them first, written to
<run>/examples/. For the demo's folder: a section per stage that ran, with its tables, curves, figures and players;
for an 'audiolvm lab' folder, each experiment's figure and numbers.
Media are embedded (one self-contained file; audio as lossless FLAC, or Opus with --audio opus) unless --link.

Examples:
  audiolvm report outputs/demo/speech_vqvae
  audiolvm report outputs/demo --out demo.html
  audiolvm report runs/vctk --examples 5 --data /corpora/VCTK-Corpus-0.92 --link
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiolvm.report import ensure_examples, write_report
from audiolvm.report.media import CODECS

HELP = "write an HTML page of a run folder, the demo's folder or a lab folder"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a run folder (with config.json), the demo's output folder (with report.json) or a lab "
                                "folder (with <experiment>.json and .png)")
    p.add_argument("--out", default=None, help="the HTML file to write (default: PATH/report.html)")
    p.add_argument("--link", action="store_true",
                   help="link the audio and images (relative to --out) instead of embedding them: a smaller page "
                        "that needs the folder beside it")
    p.add_argument("--audio", choices=CODECS, default="flac",
                   help="how audio is embedded: flac (lossless, the default) or opus (a page about a quarter as large, "
                        "lossy)")
    p.add_argument("--examples", type=int, default=3,
                   help="an audio run without examples: reconstruct this many held-out items first (0: none)")
    p.add_argument("--data", default=None, help="corpus folder for those examples (default: the run's data.root)")


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    written = ensure_examples(path, args.examples, args.data)
    if written:
        print(f"wrote {len(written)} examples to {path / 'examples'}")
    print(write_report(path, args.out, args.link, args.audio))
    return 0
