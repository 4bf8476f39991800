"""Encode and decode audio through a trained autoencoder.

Examples:
  audiolvm reconstruct --checkpoint runs/speech_vqvae --input in.wav --output out.wav
  audiolvm reconstruct --checkpoint runs/speech_vqvae --input wavs/ --output recon/
  audiolvm reconstruct --checkpoint runs/vc --input p225_001.wav --output out.wav --speaker p225
    (a speaker-conditioned model decodes in a given training speaker's voice; see also `audiolvm convert`)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from audiolvm.builders import load_model
from audiolvm.core.audio import AudioError, load_audio, save_audio
from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.models import MultiLevelAutoencoder

HELP = "reconstruct audio files through a trained model"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
log = logging.getLogger("audiolvm.reconstruct")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or .safetensors file")
    p.add_argument("--input", required=True, help="audio file, or a folder of audio files")
    p.add_argument("--output", required=True, help="output file (.wav/.flac), or a folder for folder input")
    p.add_argument("--level", type=int, default=0, help="which level's reconstruction (0 = finest)")
    p.add_argument("--speaker", default=None, help="speaker-conditioned models: the training speaker to decode as")


def reconstruct_file(model: MultiLevelAutoencoder, rate: int, src: Path, dst: Path, level: int = 0,
                     speaker: torch.Tensor | None = None, conversion: dict | None = None) -> Path:
    """Reconstruct ``src`` (or, with ``conversion``, i.e. :meth:`MultiLevelAutoencoder.convert`'s pitch options,
    convert it to ``speaker``) and write ``dst``."""
    wave, _ = load_audio(src, sample_rate=rate)
    x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
    if conversion is not None:
        if speaker is None:
            raise UsageError(f"{src}: a conversion needs the target speaker; pass --target-speaker or --reference")
        y = model.convert(x, speaker, level=level, **conversion)
    else:
        y = model.reconstruct(x, level=level, speaker=speaker)
    return save_audio(dst, y[0, 0].numpy(), rate)  # (T,)


def speaker_tensor(model: MultiLevelAutoencoder, rate: int, name: str | None = None,
                   reference: str | None = None) -> torch.Tensor | None:
    """What the decoder is conditioned on: a training speaker's id (``name``), the waveform of a
    ``reference`` clip (models with a speaker encoder), or None for an unconditioned model."""
    if model.speaker is None:
        if name or reference:
            log.warning("this model's decoder is not speaker-conditioned; ignoring --speaker/--reference")
        return None
    if reference:
        wave, _ = load_audio(reference, sample_rate=rate)
        return torch.from_numpy(wave)[None, None]  # (1, 1, T)
    if name is None:
        raise UsageError(f"this model decodes in a given speaker's voice: pass --speaker (one of "
                         f"{', '.join(model.speaker_names)})")
    return model.speaker.ids([name])


def process(model: MultiLevelAutoencoder, rate: int, src: Path, dst: Path, level: int,
            speaker: torch.Tensor | None, conversion: dict | None = None) -> int:
    """Reconstruct one file, or every audio file under a folder (unreadable ones skipped and counted)."""
    if not 0 <= level < model.num_levels:
        raise UsageError(f"--level {level}: this model has levels 0..{model.num_levels - 1}")
    if not src.exists():
        raise MissingFileError(f"{src}: no such file or folder")
    if src.is_file():
        reconstruct_file(model, rate, src, dst, level, speaker, conversion)
        log.info("wrote %s", dst)
        return 0
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    failed = 0
    for f in files:
        try:
            reconstruct_file(model, rate, f, (dst / f.relative_to(src)).with_suffix(".wav"), level, speaker, conversion)
        except AudioError as exc:
            failed += 1
            log.warning("skipped %s", exc)
    log.info("wrote %d files under %s (%d skipped)", len(files) - failed, dst, failed)
    return 0


def run(args: argparse.Namespace) -> int:
    model, cfg = load_model(args.checkpoint)
    rate = cfg.data.sample_rate
    return process(model, rate, Path(args.input), Path(args.output), args.level,
                   speaker_tensor(model, rate, args.speaker))

