"""Add a new voice to a trained speaker-conditioned VQ-VAE from 1 to 5 clips, without retraining it.

Only a new speaker vector is fitted (and, for a pitch-aware model, the speaker's ln-F0 mean and spread measured on
the clips): the frozen decoder reads the clips' own codes and F0 and the vector is optimised until it reconstructs
them (`audiolvm.models.enroll`). Under a minute on 2 CPU cores by default. The result is a new run folder, the
original's weights with the vector as one more row of the speaker table, so every command that takes a training
speaker takes the new one: `convert --target-speaker NAME`, `evaluate-vc`, `info`. The original run is not touched.
`<out>/enroll.json` records the clips, steps, time and losses.

Examples:
  audiolvm enroll --checkpoint outputs/demo/speech_vqvae --speaker anna --clips a1.wav a2.flac a3.wav
  audiolvm convert --checkpoint outputs/demo/speech_vqvae+anna --source e02_010.wav --target-speaker anna --output x.wav
  audiolvm enroll --checkpoint runs/vctk_vc --speaker p999 --clips p999/ --out runs/vctk_vc_p999 --time-limit 30
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from audiolvm.builders import enroll_voice, enrolled_config, load_speaker_model, resolve_checkpoint
from audiolvm.config import config_to_dict
from audiolvm.core.audio import AudioError, load_audio
from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import atomic_write_json
from audiolvm.data import AUDIO_EXTENSIONS
from audiolvm.engine.checkpoint import save_weights

HELP = "add a new voice to a speaker-conditioned model from a few clips (fits one speaker vector)"
log = logging.getLogger("audiolvm.enroll")


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a speaker-conditioned VQ-VAE run (model.speaker.levels)")
    p.add_argument("--speaker", required=True, help="name of the new voice (not one of the model's speakers)")
    p.add_argument("--clips", required=True, nargs="+", help="1 to 5 clips of the voice (files, or a folder)")
    p.add_argument("--out", default=None, help="the new run folder (default: <run>+<speaker> beside the run)")
    p.add_argument("--level", type=int, default=0, help="the speaker-conditioned level to fit (0 = finest)")
    p.add_argument("--steps", type=int, default=400, help="optimisation steps at most (default: 400)")
    p.add_argument("--time-limit", type=float, default=45.0, metavar="SECONDS",
                   help="stop fitting after this many seconds (default: 45)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate of the vector (default: 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing crops")


def clip_files(items: list[str]) -> list[Path]:
    """The audio files named by ``items`` (files, or folders searched for audio)."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise MissingFileError(f"--clips {path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise MissingFileError(f"--clips {path}: no such file or folder")
    return files


def run(args: argparse.Namespace) -> int:
    model, cfg = load_speaker_model(args.checkpoint, args.level)
    run_dir = resolve_checkpoint(args.checkpoint)[0].parent
    out = Path(args.out) if args.out else run_dir.parent / f"{run_dir.name}+{args.speaker}"
    if out.resolve() == run_dir.resolve():
        raise UsageError(f"--out {out} is the original run; enrolment writes a new run folder")
    files = clip_files(args.clips)
    if not 1 <= len(files) <= 5:
        log.warning("%d clips given; enrolment is designed for 1 to 5 (more only cost time)", len(files))
    rate = cfg.data.sample_rate
    clips = []
    for f in files:
        try:
            clips.append(torch.from_numpy(load_audio(f, sample_rate=rate)[0]))
        except AudioError as e:
            raise AudioError(f, f"--clips: {e.reason}", "give readable audio files (wav, flac, ...)") from None
    t0 = time.time()
    result = enroll_voice(model, cfg, args.speaker, clips, level=args.level, steps=args.steps, lr=args.lr,
                          seed=args.seed, time_limit=args.time_limit)
    new_cfg = enrolled_config(cfg, model, args.speaker, result)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.state_dict(), out / "model.safetensors")
    atomic_write_json(out / "config.json", config_to_dict(new_cfg))
    record = {"speaker": args.speaker, "from_run": str(run_dir), "level": args.level, "clips": [str(f) for f in files],
              **result.summary(rate), "seconds": round(time.time() - t0, 1)}
    atomic_write_json(out / "enroll.json", record)
    print(f"enrolled {args.speaker!r} from {len(files)} clips ({record['seconds_of_audio']} s of audio) in "
          f"{result.steps} steps, {result.seconds:.0f} s: loss {result.first_loss:.3f} -> {result.last_loss:.3f}; "
          f"wrote {out} (use: audiolvm convert --checkpoint {out} --target-speaker {args.speaker} ...)")
    return 0
