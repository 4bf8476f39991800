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
import logging
import math
from pathlib import Path

import torch

from audiolvm.builders import load_model, load_stages, split_entries_for
from audiolvm.core.audio import load_audio, save_audio
from audiolvm.core.errors import UnknownNameError, UsageError
from audiolvm.core.files import atomic_write_text
from audiolvm.eval import plot_spectrograms
from audiolvm.eval.music import music_report
from audiolvm.eval.sampling import ChainSamples, read_saved_codes, resolve_settings, sample_chain, write_saved_codes
from audiolvm.models.chain import SamplingChain, top_down

HELP = "sample audio from a prior, upsamplers and a VQ-VAE"
log = logging.getLogger("audiolvm.sample")


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


def _values(text: str | None, what: str) -> list[float | None]:
    if text is None:
        return []
    try:
        return [float(v) for v in str(text).split(",")]
    except ValueError as exc:
        raise UsageError(f"--{what} {text!r}: give a number or a comma-separated list of numbers, top-down") from exc


def execute(args: argparse.Namespace) -> ChainSamples:
    """``run`` returning the samples (codes per level and audio) after writing them."""
    model, vcfg = load_model(args.vqvae)
    saved_meta, start = read_saved_codes(args.from_codes, args.level) if args.from_codes else ({}, {})
    if not args.from_codes and args.prior is None:
        raise UsageError("--prior is required (or resume with --from-codes DIR)")
    n = args.n if args.n is not None else saved_meta.get("n", 1)  # the command line's, else as saved, else default
    seconds = args.seconds if args.seconds is not None else saved_meta.get("seconds", 4.0)
    speaker = args.speaker if args.speaker is not None else saved_meta.get("speaker")
    runs = ([args.prior] if args.prior and not start else []) + [u for u in args.upsamplers.split(",") if u]
    if not (n >= 1 and math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--n {n} / --seconds {seconds}: need at least one sample of a finite, positive length")
    stages = [st for st in load_stages(args.vqvae, model, runs) if st.level not in start]
    levels = [st.level for st in stages]
    settings = resolve_settings(levels, saved_meta.get("settings", {}), top_k=args.top_k, seed=args.seed,
                                temperature=top_down(_values(args.temperature, "temperature"), levels, "--temperature"),
                                top_p=top_down(_values(args.top_p, "top-p"), levels, "--top-p"))
    if not stages and not start:
        raise UsageError("nothing to sample: give --prior (and --upsamplers) or --from-codes")
    rate = vcfg.data.sample_rate
    chain = SamplingChain(model, stages, rate)
    prime = torch.from_numpy(load_audio(args.prime, sample_rate=rate)[0])[None, None] if args.prime else None
    try:
        samples = sample_chain(chain, n, seconds, speaker, settings, prime, start)
    except KeyError as exc:
        raise UnknownNameError(f"--speaker: {exc.args[0]}") from exc
    out, lowest = Path(args.out), samples.level
    waves = [samples.audio[i, 0].numpy() for i in range(n)]
    for i, wave in enumerate(waves):
        save_audio(out / f"sample_{i:02d}.wav", wave, rate)
        plot_spectrograms({f"sample {i} (level {lowest})": wave}, rate, out / f"sample_{i:02d}.png")
    if args.save_codes:
        write_saved_codes(out / "codes", samples.codes, settings, {
            "vqvae": str(args.vqvae), "priors": runs, "n": n, "seconds": seconds, "speaker": speaker,
            "prime": args.prime, "settings": saved_meta.get("settings", {})})
    log.info("wrote %d samples of %.1f s (level %d) to %s", n, seconds, lowest, out)
    if args.measure:
        reader, held_out = split_entries_for(vcfg, "valid")
        report = music_report(model, reader, [e for e, _ in held_out], rate, [lowest])
        report.add(f"these samples (level {lowest})", waves)
        atomic_write_text(out / "music_measures.md", report.to_table() + "\n")
        report.write_json(str(out / "music_measures.json"))
        print(report.to_table())
    return samples


def run(args: argparse.Namespace) -> int:
    execute(args)
    return 0
