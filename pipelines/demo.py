"""The main job on the embedded corpora: for speech (1 level, speaker-conditioned decoder) and music
(3 levels, hops 8/32/128), train the VQ-VAE, encode the corpus to codes on disk, score held-out
reconstructions per level, and write examples; fine-tune the speech model adversarially (discriminators,
warm start) and compare before / after; then train priors on those codes and sample music and
speech; convert held-out speech to other voices and score it with an independent speaker classifier (and to
and from a voice the speech model never heard: reference clip, few-shot enrolment);
probe the speech codes for phones; train a VAE and an IWAE on the digits (samples, traversal grid,
importance-sampled NLL) and an image VQ-VAE with a PixelCNN prior over its codes; and write a report.

Outputs (under --out, default outputs/demo), for each of speech and music:
  <corpus>_vqvae/             run folder: checkpoints, model.safetensors, config.json, curves.png, eval/
  <corpus>_codes/             per-level codes of the whole corpus (input of the priors)
  <corpus>_examples/          held-out originals beside each level's reconstruction (WAV) + spectrograms
  speech_vqvae_gan/           the speech model fine-tuned with discriminators (warm start), its scores before
                              and after, and spectrograms before / after in examples/
  prior runs, <corpus>_samples/  priors over the codes and sampled audio
  speaker_classifier/, vc/    the classifier and the conversion scores, bar plot, converted WAVs; vc/unseen.md
                              and vc/unseen_examples/ for the voice held out of the speech model
  probe/                      phone-probe tables, JSON, confusion matrix
  images/                     VAE / IWAE runs on the digits, sample and traversal grids, NLL table;
                              the image VQ-VAE and its PixelCNN prior (class-conditional samples)
  report.md, report.json      all of the above in one place
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from audiolvm.builders import load_model, split_entries_for
from audiolvm.config import ExperimentConfig, load_config
from audiolvm.core.audio import save_audio
from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.core.pitch import extract_pitch, f0_range
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.data.codes import CodeStore
from audiolvm.eval import codebook_usage, evaluate_model, plot_spectrograms
from audiolvm.eval.evaluate import own_speaker, speech_pitch_settings
from audiolvm.eval.plots import plot_pitch_tracks
from audiolvm.models import MultiLevelAutoencoder
from audiolvm_pipelines import demo_gan, demo_images, demo_priors, demo_vc, encode, train
from audiolvm_pipelines.demo_common import parsed

HELP = "run the demo pipeline on the embedded corpora"
log = logging.getLogger("audiolvm.demo")
STAGES = {"speech": "configs/demo/speech_vqvae.yaml", "music": "configs/demo/music_vqvae.yaml"}
NOTES = {  # what a reader of the report needs to know about a stage's numbers
    "speech": "Pitch columns: f0_cents_median / f0_cents_p90 are the absolute F0 error on frames voiced in both "
              "original and reconstruction, vde the fraction of frames whose voicing differs (pyworld DIO + "
              "StoneMask, 4 ms frames); pesq_wb is wide-band PESQ (1-4.6), stoi short-time intelligibility (0-1). "
              "This model is built for voice conversion and phone units, not fidelity: 62.5 codes/s from "
              "128 codes, decoded by a small non-autoregressive decoder that does not reproduce the phase, "
              "so SI-SDR (a waveform measure) is very low by design; the mel and MR-STFT distances and the "
              "listening examples are the meaningful figures. The music model shows the high-rate levels.",
}


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/demo", help="report folder")
    p.add_argument("--stages", default="speech,music,gan,priors,vc,probe,images",
                   help="comma-separated subset of: speech,music,gan,priors,vc,probe,images (priors needs speech and "
                        "music; gan, vc and probe need speech; images is independent of the audio)")
    p.add_argument("--prior-steps", type=int, default=None, help="override the priors' training steps")
    p.add_argument("--examples", type=int, default=3, help="held-out items to reconstruct per corpus")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every stage's config")


def farthest_voice(cfg: ExperimentConfig, source: str) -> str | None:
    """The training speaker whose mean ln F0 is farthest from ``source``'s (a pitch-aware model's stats), else
    the first other training speaker; None for a model that is not speaker-conditioned."""
    names = [n for n in cfg.model.speaker.names if n != source]
    if not cfg.model.speaker.levels or not names:
        return None
    stats = cfg.model.pitch.stats
    if source not in stats:
        return names[0]
    return max(names, key=lambda n: abs(stats[n][0] - stats[source][0]))


def write_pitch_plot(model: MultiLevelAutoencoder, cfg: ExperimentConfig, entry: Entry, wave: np.ndarray,
                     recon: np.ndarray, png: Path) -> str | None:
    """Pitch tracks of the original, its level-0 reconstruction and its conversion to the voice farthest in
    pitch (WAV beside ``png``); returns the conversion's target (None if the model cannot convert)."""
    settings = speech_pitch_settings(model, cfg.data.sample_rate)
    waves = {"original": wave, "reconstruction": recon}
    target = farthest_voice(cfg, entry.speaker)
    if target is not None:
        x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
        waves[f"converted to {target}"] = model.convert(x, model.speaker.ids([target]))[0, 0].numpy()
        save_audio(png.with_name(f"{png.stem}_to_{target}.wav"), waves[f"converted to {target}"], cfg.data.sample_rate)
    stats = cfg.model.pitch.stats
    voices = (("original", entry.speaker), (f"converted to {target}", target))
    bands = {label: f0_range(stats[spk]) for label, spk in voices if spk in stats}
    plot_pitch_tracks({k: extract_pitch(v, settings) for k, v in waves.items()}, settings.hop / settings.sample_rate,
                      png, title=f"F0 of {entry.utterance} ({entry.speaker}); shaded: each voice's mean +- 1 sd",
                      bands=bands)
    return target


def write_examples(model: MultiLevelAutoencoder, cfg: ExperimentConfig, reader: CorpusReader,
                   entries: list[Entry], out: Path, pitch: bool = False) -> list[str]:
    """Original and every level's reconstruction of held-out ``entries``, as WAVs and one PNG each; with
    ``pitch`` (speech) also a pitch-track PNG (``<name>_pitch.png``, see :func:`write_pitch_plot`)."""
    names = []
    for entry, wave in iter_audio(reader, entries, cfg.data.sample_rate, "examples", False):
        rate, name = cfg.data.sample_rate, entry.utterance.replace("/", "_")
        recons = model.reconstruct(torch.from_numpy(wave)[None, None], speaker=own_speaker(model, entry.speaker))
        panels = {"original": wave} | {f"level {i} (hop {h})": r[0, 0].numpy()
                                       for i, (r, h) in enumerate(zip(recons, model.hops, strict=True))}
        for label, audio in panels.items():
            save_audio(out / f"{name}_{label.split(' (')[0].replace(' ', '')}.wav", audio, rate)
        plot_spectrograms(panels, rate, out / f"{name}.png", title=f"{name}: {entry.text[:60]}")
        if pitch:
            write_pitch_plot(model, cfg, entry, wave, recons[0][0, 0].numpy(), out / f"{name}_pitch.png")
        names.append(name)
    return names


def corpus_usage(codes_dir: Path) -> list[dict]:
    store = CodeStore(codes_dir)
    rows = []
    for lv in store.levels:
        usage = codebook_usage((torch.from_numpy(store.codes(it, lv.level).astype("int64")) for it in store.items),
                               lv.num_codes)
        rows.append({"level": lv.level, "hop": lv.hop, **usage.as_dict()})
    return rows


def run_stage(name: str, args: argparse.Namespace, out: Path) -> dict:
    config, run_dir = STAGES[name], out / f"{name}_vqvae"
    cfg = load_config(config, args.overrides)
    if not Path(cfg.data.root).exists():
        raise MissingFileError(f"data.root={cfg.data.root}: corpus not found; see data_scripts/ to generate it")
    t0 = time.time()
    log.info("[%s 1/4] training %d steps (hops %s)", name, cfg.train.max_steps, cfg.model.hops)
    train.run(parsed(train, config, *args.overrides, f"train.out_dir={run_dir}"))
    seconds = time.time() - t0
    log.info("[%s 2/4] encoding the corpus to codes", name)
    codes_dir = out / f"{name}_codes"
    encode.run(parsed(encode, "--checkpoint", run_dir, "--out", codes_dir, "--split", "all"))
    log.info("[%s 3/4] scoring held-out reconstructions per level", name)
    model, cfg = load_model(run_dir)
    reader, selected = split_entries_for(cfg, "valid")
    held_out = [e for e, _ in selected]
    speech = name == "speech"  # F0, voicing, PESQ and STOI columns, pitch-track plots
    report = evaluate_model(model, reader, held_out, cfg.data.sample_rate,
                            pitch=speech_pitch_settings(model, cfg.data.sample_rate) if speech else None)
    report.write_csv(run_dir / "eval" / "metrics.csv")
    report.write_json(run_dir / "eval" / "metrics.json")
    log.info("[%s 4/4] writing examples", name)
    examples = write_examples(model, cfg, reader, held_out[: args.examples], out / f"{name}_examples", pitch=speech)
    return {"name": name, "config": config, "steps": cfg.train.max_steps, "train_seconds": seconds,
            "hops": model.hops, "held_out_items": len(selected), "table": report.to_table(),
            "metrics": report.rows(), "corpus_usage": corpus_usage(codes_dir), "examples": examples}


def report_section(stage: dict) -> list[str]:
    name = stage["name"]
    usage = ", ".join(f"level {u['level']}: {u['used']}/{u['codes']} used (perplexity {u['perplexity']:.0f})"
                      for u in stage["corpus_usage"])
    return [
        f"## {name.capitalize()}: {len(stage['hops'])}-level VQ-VAE, hops {stage['hops']}", "",
        f"Trained {stage['steps']} steps in {stage['train_seconds']:.0f} s (`{stage['config']}`); "
        f"curves: `{name}_vqvae/curves.png`.", "",
        f"Held-out reconstruction ({stage['held_out_items']} items; SI-SDR in dB, higher is better; "
        "distances lower is better):", "", stage["table"], "",
        *([NOTES[name], ""] if name in NOTES else []),
        f"Codebook usage over the whole corpus: {usage}.", "",
        f"Examples (original and each level, WAV + spectrogram PNG) in `{name}_examples/`: "
        + ", ".join(stage["examples"]), "",
        *([f"Pitch tracks (original, reconstruction, conversion to the voice farthest in pitch, with each voice's "
           f"F0 range shaded): `{name}_examples/<name>_pitch.png`, e.g. ![pitch]({name}_examples/"
           f"{stage['examples'][0]}_pitch.png)", ""] if name == "speech" and stage["examples"] else []),
    ]


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := set(names) - set(STAGES) - {"gan", "priors", "vc", "probe", "images"}:
        raise UsageError(f"--stages: unknown {sorted(unknown)}; choose from {sorted(STAGES)}, gan, priors, vc, probe, "
                         "images")
    stages = [run_stage(name, args, out) for name in names if name in STAGES]
    gan = demo_gan.run_gan(out, overrides=tuple(args.overrides)) if "gan" in names else None
    priors = demo_priors.run_priors(out, args.prior_steps) if "priors" in names else None
    vc = demo_vc.run_vc(out) if "vc" in names else None
    probed = demo_vc.run_probe(out) if "probe" in names else None
    images = demo_images.run_images(out) if "images" in names else None
    atomic_write_json(out / "report.json", {"stages": stages, "gan": gan, "priors": priors, "vc": vc, "probe": probed,
                                            "images": images})
    lines = ["# audiolvm demo report", ""] + [line for stage in stages for line in report_section(stage)]
    lines += demo_gan.report_lines(gan) if gan else []
    lines += demo_priors.report_lines(priors) if priors else []
    lines += demo_vc.report_lines(vc, probed)
    lines += demo_images.report_lines(images) if images else []
    atomic_write_text(out / "report.md", "\n".join(lines))
    print("\n".join(lines))
    return 0
