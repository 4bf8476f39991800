"""Sample audio ancestrally: top-level prior -> each upsampler -> the VQ-VAE decoder.

Every level draws from its own generator seeded by (--seed, level), so a chain resumed from saved codes
gives the same audio as one run straight through.

Examples:
  audiolvm sample --vqvae outputs/demo/music_vqvae --prior outputs/demo/music_prior_top \\
      --upsamplers outputs/demo/music_upsampler --seconds 4 --n 2 --speaker organ --out samples/
  audiolvm sample --vqvae V --prior P --prime prompt.wav --seconds 8 --temperature 0.9 --top-p 0.95 --out s/
  # staged: sample and keep the top level's codes, then run the upsampler later (another machine, less memory)
  audiolvm sample --vqvae V --prior P --seconds 20 --n 4 --save-codes --out top/
  audiolvm sample --vqvae V --upsamplers U --from-codes top/codes --level 2 --out full/
  # measure the samples against held-out clips, the VQ-VAE's reconstructions and noise
  audiolvm sample --vqvae V --prior P --upsamplers U --n 4 --seconds 4 --measure --out s/
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import math
from pathlib import Path

import numpy as np
import torch

from audiolvm.builders import load_model, load_stages, split_entries_for
from audiolvm.core.audio import load_audio, save_audio
from audiolvm.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from audiolvm.eval import plot_spectrograms
from audiolvm.eval.music import music_report
from audiolvm.models.chain import SamplingChain, SamplingSettings, top_down

HELP = "sample audio from a prior, upsamplers and a VQ-VAE"
log = logging.getLogger("audiolvm.sample")
CODES_META = "codes.json"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vqvae", required=True, help="the VQ-VAE run whose codes the priors model")
    p.add_argument("--prior", default=None, help="top-level prior run (train-prior output); not needed with "
                                                 "--from-codes")
    p.add_argument("--upsamplers", default="", help="comma-separated upsampler runs, top-down")
    p.add_argument("--seconds", type=float, default=None, help="length of each sample (default 4; with "
                                                               "--from-codes: the saved codes' length)")
    p.add_argument("--n", type=int, default=None, help="number of samples (default 1; with --from-codes: as saved)")
    p.add_argument("--speaker", default=None, help="label (speaker / track group) to condition on")
    p.add_argument("--prime", default=None, help="audio prompt to continue")
    p.add_argument("--temperature", default=None,
                   help="one value for every level or a comma-separated list top-down, e.g. 1.0,0.8 for a cooler "
                        "upsampler (default 1.0; with --from-codes: as saved)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", default=None, help="nucleus sampling: one value or a list top-down, like --temperature")
    p.add_argument("--seed", type=int, default=None, help="default 0 (with --from-codes: as saved)")
    p.add_argument("--save-codes", action="store_true",
                   help="also write every sampled level's codes to OUT/codes/ (level<L>.npy + codes.json)")
    p.add_argument("--from-codes", default=None, metavar="DIR",
                   help="resume from codes saved by --save-codes: take level --level and above from DIR and run "
                        "only the stages below it")
    p.add_argument("--level", type=int, default=None,
                   help="with --from-codes: the saved level to resume from (default: the lowest saved level)")
    p.add_argument("--measure", action="store_true",
                   help="score the samples with the music measures against held-out clips of the VQ-VAE's corpus, "
                        "its reconstructions and white noise (OUT/music_measures.{md,json})")
    p.add_argument("--out", required=True, help="output folder for WAVs and spectrogram PNGs")


def read_saved_codes(folder: Path, level: int | None) -> tuple[dict, dict[int, torch.Tensor]]:
    """``(meta, {level: codes})`` of a ``--save-codes`` folder, levels >= ``level`` only."""
    meta_path = folder / CODES_META
    if not meta_path.is_file():
        raise FileNotFoundError(f"--from-codes {folder}: no {CODES_META}; write one with 'audiolvm sample "
                                "--save-codes --out DIR' and pass DIR/codes")
    meta = read_json(meta_path, "write the codes again with 'audiolvm sample --save-codes'")
    saved = sorted(int(lv) for lv in meta["levels"])
    level = saved[0] if level is None else level
    if level not in saved:
        raise ValueError(f"--level {level}: {folder} holds levels {saved}; resume from one of them")
    codes = {lv: torch.from_numpy(np.load(folder / f"level{lv}.npy", allow_pickle=False).astype(np.int64))
             for lv in saved if lv >= level}
    return meta, codes


def _values(text: str | None, what: str) -> list[float | None]:
    if text is None:
        return []
    try:
        return [float(v) for v in str(text).split(",")]
    except ValueError as exc:
        raise ValueError(f"--{what} {text!r}: give a number or a comma-separated list of numbers, top-down") from exc


def level_settings(args: argparse.Namespace, saved_meta: dict, levels: list[int]) -> dict[int, SamplingSettings]:
    """Per-level sampling settings of the levels to sample (top-down): the command line's, else those the
    saved codes were drawn with (--from-codes), else the defaults."""
    saved = {int(lv): SamplingSettings(**v) for lv, v in saved_meta.get("settings", {}).items()}
    temps = top_down(_values(args.temperature, "temperature"), levels, "--temperature")
    tops = top_down(_values(args.top_p, "top-p"), levels, "--top-p")
    out = {}
    for lv in levels:
        base = saved.get(lv, SamplingSettings())
        out[lv] = SamplingSettings(temps.get(lv, base.temperature),
                                   args.top_k if args.top_k is not None else base.top_k,
                                   tops.get(lv, base.top_p), args.seed if args.seed is not None else base.seed)
    return out


def write_codes(folder: Path, codes: dict[int, torch.Tensor], meta: dict) -> None:
    for lv, c in codes.items():
        buf = io.BytesIO()
        np.save(buf, c.numpy().astype(np.int32))
        atomic_write_bytes(folder / f"level{lv}.npy", buf.getvalue())
    atomic_write_json(folder / CODES_META, meta | {"levels": sorted(codes)})


def run(args: argparse.Namespace) -> int:
    model, vcfg = load_model(args.vqvae)
    saved_meta, start = ({}, {})
    if args.from_codes:
        saved_meta, start = read_saved_codes(Path(args.from_codes), args.level)
    elif args.prior is None:
        raise ValueError("--prior is required (or resume with --from-codes DIR)")

    def setting(name: str, default):  # noqa: ANN001, ANN202 - CLI value, else the saved run's, else the default
        value = getattr(args, name)
        return value if value is not None else saved_meta.get(name, default)

    n, seconds, speaker = setting("n", 1), setting("seconds", 4.0), setting("speaker", None)
    runs = ([args.prior] if args.prior and not start else []) + [u for u in args.upsamplers.split(",") if u]
    if not (n >= 1 and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"--n {n} / --seconds {seconds}: need at least one sample of a finite, positive length")
    stages = [st for st in load_stages(args.vqvae, model, runs) if st.level not in start]
    settings = level_settings(args, saved_meta, [st.level for st in stages])
    if not stages and not start:
        raise ValueError("nothing to sample: give --prior (and --upsamplers) or --from-codes")
    chain = SamplingChain(model, stages, vcfg.data.sample_rate)
    prime = None
    if args.prime:
        wave, _ = load_audio(args.prime, sample_rate=vcfg.data.sample_rate)
        prime = dict(enumerate(model.encode(torch.from_numpy(wave)[None, None])))  # {level: (1, N_l)}
    try:
        codes = chain.sample_codes(n, seconds, speaker, settings, prime, start)
    except KeyError as exc:
        raise KeyError(f"--speaker: {exc.args[0]}") from exc
    lowest = min(codes)
    audio = chain.decode(codes, lowest, seconds, speaker)  # (n, 1, T)
    out, rate = Path(args.out), vcfg.data.sample_rate
    for i in range(n):
        wave = audio[i, 0].numpy()
        save_audio(out / f"sample_{i:02d}.wav", wave, rate)
        plot_spectrograms({f"sample {i} (level {lowest})": wave}, rate, out / f"sample_{i:02d}.png")
    if args.save_codes:
        write_codes(out / "codes", codes, {
            "vqvae": str(args.vqvae), "priors": runs, "n": n, "seconds": seconds, "speaker": speaker,
            "prime": args.prime, "settings": saved_meta.get("settings", {}) | {
                str(lv): dataclasses.asdict(v) for lv, v in settings.items()}})
    log.info("wrote %d samples of %.1f s (level %d) to %s", n, seconds, lowest, out)
    if args.measure:
        reader, held_out = split_entries_for(vcfg, "valid")
        report = music_report(model, reader, [e for e, _ in held_out], rate, [lowest])
        report.add(f"these samples (level {lowest})", [audio[i, 0].numpy() for i in range(n)])
        atomic_write_text(out / "music_measures.md", report.to_table() + "\n")
        report.write_json(str(out / "music_measures.json"))
        print(report.to_table())
    return 0
