"""Voice conversion with a speaker-conditioned VQ-VAE: encode the source, decode it in another voice.

The codes carry what was said; the decoder supplies who says it. The target is a training speaker
(`--target-speaker`, one of the names saved with the model) or, for a model trained with a speaker
encoder (`model.speaker.encoder: true`), a reference clip of any speaker (`--reference`).

Examples:
  audiolvm convert --checkpoint outputs/demo/speech_vqvae --source e02_010.wav --target-speaker e07 --output out.wav
  audiolvm convert --checkpoint runs/vctk_vc --source wavs/ --target-speaker p226 --output converted/
  audiolvm convert --checkpoint runs/vctk_vc --source in.wav --reference someone_else.wav --output out.wav
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiolvm.builders import load_model
from pipelines.reconstruct import process, speaker_tensor

HELP = "voice conversion: decode a source utterance (or folder) as another speaker"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a speaker-conditioned VQ-VAE run (model.speaker.levels)")
    p.add_argument("--source", required=True, help="audio file, or a folder of audio files")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-speaker", default=None, help="a training speaker's name (see `audiolvm info`)")
    target.add_argument("--reference", default=None, help="a clip of the target voice (needs a speaker encoder)")
    p.add_argument("--output", required=True, help="output file (.wav/.flac), or a folder for folder input")
    p.add_argument("--level", type=int, default=0, help="which level's decoder to use (0 = finest)")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_model(args.checkpoint)
    if model.speaker is None:
        raise ValueError(f"{args.checkpoint}: this model's decoder is not speaker-conditioned; train one with "
                         "model.speaker.levels set (e.g. configs/demo/speech_vqvae.yaml)")
    if args.level not in model.speaker_levels:
        raise ValueError(f"--level {args.level}: speaker-conditioned levels of this model are {model.speaker_levels}")
    if args.reference and model.speaker.encoder is None:
        raise ValueError(f"{args.checkpoint}: --reference needs a model trained with a speaker encoder "
                         f"(model.speaker.encoder: true); use --target-speaker with one of "
                         f"{', '.join(model.speaker_names)}")
    rate = cfg.data.sample_rate
    speaker = speaker_tensor(model, rate, args.target_speaker, args.reference)
    return process(model, rate, Path(args.source), Path(args.output), args.level, speaker)
