"""Demo stage for the priors: train a top prior and an upsampler on the demo music codes and a prior on
the speech codes, score them on held-out codes, and sample music and speech (see ``pipelines/demo.py``)."""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import numpy as np

from audiolvm.builders import load_model, load_prior
from audiolvm.core.audio import load_audio
from audiolvm.core.pitch import extract_pitch, f0_range
from audiolvm.data.codes import CodeStore
from audiolvm.eval.evaluate import speech_pitch_settings
from audiolvm.eval.plots import plot_pitch_tracks
from audiolvm.eval.prior import evaluate_prior
from pipelines import sample, train_prior

log = logging.getLogger("audiolvm.demo")
PRIORS = {  # name: (config, codes folder of the demo)
    "music_prior_top": ("configs/demo/prior_top.yaml", "music_codes"),
    "music_upsampler": ("configs/demo/upsampler.yaml", "music_codes"),
    "speech_prior": ("configs/demo/speech_prior.yaml", "speech_codes"),
}


def train_and_score(name: str, out: Path, steps: int | None) -> dict:
    config, codes = PRIORS[name]
    overrides = [f"codes.root={out / codes}", f"train.out_dir={out / name}"]
    overrides += [f"train.max_steps={steps}"] if steps else []
    t0 = time.time()
    train_prior.run(argparse.Namespace(config=config, overrides=overrides, resume=False))
    prior, cfg = load_prior(out / name)
    window = cfg.prior.context
    nll = evaluate_prior(prior, CodeStore(out / codes), cfg.codes.level, window, "valid", cfg.codes.upper_level,
                         cfg.prior.labels)
    return {"name": name, "kind": cfg.prior.kind, "level": cfg.codes.level, "steps": cfg.train.max_steps,
            "train_seconds": time.time() - t0, **nll}


def draw(out: Path, corpus: str, priors: list[str], seconds: float, speaker: str) -> dict:
    args = argparse.Namespace(vqvae=str(out / f"{corpus}_vqvae"), prior=str(out / priors[0]),
                              upsamplers=",".join(str(out / p) for p in priors[1:]), seconds=seconds, n=2,
                              speaker=speaker, prime=None, temperature=1.0, top_k=None, top_p=0.95, seed=0,
                              out=str(out / f"{corpus}_samples"))
    t0 = time.time()
    sample.run(args)
    wall = time.time() - t0
    result = {"corpus": corpus, "seconds": seconds, "n": 2, "wall_seconds": wall, "rtf": wall / (2 * seconds)}
    if corpus == "speech":
        result["pitch"] = sample_pitch(out / f"{corpus}_vqvae", Path(args.out), speaker)
    return result


def sample_pitch(vqvae: Path, folder: Path, speaker: str) -> dict:
    """Do sampled speech waves carry pitch? Their voiced fraction and median F0 against the speaker's F0 range
    (mean +- 1 sd of ln F0 over its training speech), and one pitch-track plot of all samples."""
    model, cfg = load_model(vqvae)
    settings = speech_pitch_settings(model, cfg.data.sample_rate)
    tracks = {p.stem: extract_pitch(load_audio(p, sample_rate=cfg.data.sample_rate)[0], settings)
              for p in sorted(folder.glob("sample_*.wav"))}
    stats = cfg.model.pitch.stats.get(speaker)
    band = f0_range(stats) if stats else None
    plot_pitch_tracks(tracks, settings.hop / settings.sample_rate, folder / "pitch.png",
                      title=f"F0 of the speech samples ({speaker}'s range shaded)",
                      bands={k: band for k in tracks} if band else None)
    voiced = np.concatenate([f[v] for f, v in tracks.values()])
    return {"voiced_fraction": float(np.mean([v.mean() for _, v in tracks.values()])),
            "median_f0_hz": float(np.median(voiced)) if voiced.size else math.nan,
            "in_range": float(((voiced >= band[0]) & (voiced <= band[1])).mean()) if band and voiced.size else None,
            "speaker_range_hz": band, "plot": str(folder / "pitch.png")}


def run_priors(out: Path, steps: int | None = None) -> dict:
    log.info("[priors 1/2] training and scoring the music top prior, upsampler and speech prior")
    scores = [train_and_score(name, out, steps) for name in PRIORS]
    log.info("[priors 2/2] sampling music and speech")
    draws = [draw(out, "music", ["music_prior_top", "music_upsampler"], 4.0, "organ"),
             draw(out, "speech", ["speech_prior"], 2.0, "e01")]
    return {"scores": scores, "samples": draws}


def report_lines(stage: dict) -> list[str]:
    lines = ["## Priors over the codes", "",
             "| prior | kind | level | steps | train s | held-out nats/code | bits/code |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {s['name']} | {s['kind']} | {s['level']} | {s['steps']} | {s['train_seconds']:.0f} | "
              f"{s['nats_per_code']:.3f} | {s['bits_per_code']:.3f} |" for s in stage["scores"]]
    lines += ["", "Samples (top-p 0.95, 2 each; WAV + spectrogram PNG in `<corpus>_samples/`):", ""]
    lines += [f"- {d['corpus']}: {d['seconds']:.0f} s each in {d['wall_seconds']:.1f} s "
              f"(real-time factor {d['rtf']:.2f} for the whole chain, priors + decoder)" for d in stage["samples"]]
    for d in stage["samples"]:
        if p := d.get("pitch"):
            lo, hi = p["speaker_range_hz"] or (0.0, 0.0)
            rng = (f"; {p['in_range']:.0%} of their voiced frames lie in the speaker's range {lo:.0f}-{hi:.0f} Hz"
                   if p["in_range"] is not None else "")
            lines += ["", f"Pitch of the {d['corpus']} samples (F0 predicted from the sampled codes): "
                          f"{p['voiced_fraction']:.0%} of frames voiced, median F0 {p['median_f0_hz']:.0f} Hz{rng}; "
                          f"pitch tracks in `{d['corpus']}_samples/pitch.png`."]
    return lines + [""]
