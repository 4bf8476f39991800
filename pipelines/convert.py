"""Voice conversion with a speaker-conditioned VQ-VAE: encode the source, decode it in another voice.

The codes carry what was said; the decoder supplies who says it. The target is a training speaker
(`--target-speaker`, one of the names saved with the model) or, for a model trained with a speaker
encoder (`model.speaker.encoder: true`), a reference clip of any speaker (`--reference`).

Examples:
  audiolvm convert --checkpoint outputs/demo/speech_vqvae --source e02_010.wav --target-speaker e07 --output out.wav
  audiolvm convert --checkpoint runs/vctk_vc --source wavs/ --target-speaker p226 --output converted/
  audiolvm convert --checkpoint runs/vctk_vc --source in.wav --reference someone_else.wav --output out.wav
  audiolvm convert ... --pitch predicted          # the target speaker's own intonation, from the codes
  audiolvm convert ... --pitch source --pitch-shift -12   # keep the source contour, an octave down

A pitch-aware model (model.pitch.levels) also takes F0: by default (--pitch map) the source's ln-F0 contour is
moved from its own mean and spread to the target speaker's (saved with the model, or measured on
--reference), so the conversion speaks in the target's range with the source's intonation.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from audiolvm.builders import load_speaker_model
from audiolvm.core.errors import UsageError
from audiolvm.models.multilevel import PITCH_MODES
from audiolvm_pipelines.reconstruct import process, speaker_tensor

log = logging.getLogger("audiolvm.convert")
HELP = "voice conversion: decode a source utterance (or folder) as another speaker"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a speaker-conditioned VQ-VAE run (model.speaker.levels)")
    p.add_argument("--source", required=True, help="audio file, or a folder of audio files")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-speaker", default=None, help="a training speaker's name (see `audiolvm info`)")
    target.add_argument("--reference", default=None, help="a clip of the target voice (needs a speaker encoder)")
    p.add_argument("--output", required=True, help="output file (.wav/.flac), or a folder for folder input")
    p.add_argument("--level", type=int, default=0, help="which level's decoder to use (0 = finest)")
    p.add_argument("--pitch", choices=PITCH_MODES, default="map",
                   help="pitch-aware models: map the source F0 to the target's range (default), keep the source "
                        "F0, or use the F0 predicted from the codes in the target's range")
    p.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                   help="pitch-aware models: shift the F0 by this many semitones (with --pitch map or source)")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_speaker_model(args.checkpoint, args.level)
    if args.reference and (model.speaker is None or model.speaker.encoder is None):
        raise UsageError(f"{args.checkpoint}: --reference needs a model trained with a speaker encoder "
                         f"(model.speaker.encoder: true); use --target-speaker with one of "
                         f"{', '.join(model.speaker_names)}")
    if model.pitch is None and (args.pitch != "map" or args.pitch_shift):
        log.warning("this model has no pitch path (model.pitch.levels is empty); ignoring --pitch/--pitch-shift")
    if args.pitch == "predicted" and args.pitch_shift:
        raise UsageError("--pitch-shift applies to --pitch map or source; the predicted F0 is in the target's range")
    rate = cfg.data.sample_rate
    speaker = speaker_tensor(model, rate, args.target_speaker, args.reference)
    conversion = {"pitch": args.pitch, "shift_semitones": args.pitch_shift}
    return process(model, rate, Path(args.source), Path(args.output), args.level, speaker, conversion)
