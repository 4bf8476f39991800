"""The demo's VQ-VAE stages (speech, music): train, encode the corpus to codes, score held-out reconstructions per
level, write listening examples (``audiolvm.eval.examples``), and the report section of each."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from audiolvm.builders import load_model, split_entries_for
from audiolvm.config import load_config
from audiolvm.core.errors import MissingFileError
from audiolvm.data.codes import CodeStore
from audiolvm.eval import codebook_usage, evaluate_model
from audiolvm.eval.evaluate import speech_pitch_settings
from audiolvm.eval.examples import write_examples
from audiolvm_pipelines import encode, train
from audiolvm_pipelines.demo_common import parsed

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


def corpus_usage(codes_dir: Path) -> list[dict]:
    store = CodeStore(codes_dir)
    rows = []
    for lv in store.levels:
        usage = codebook_usage((torch.from_numpy(store.codes(it, lv.level).astype("int64")) for it in store.items),
                               lv.num_codes)
        rows.append({"level": lv.level, "hop": lv.hop, **usage.as_dict()})
    return rows


def run_stage(name: str, out: Path, overrides: Sequence[str] = (), examples_n: int = 3) -> dict:
    """Train the ``name`` VQ-VAE, encode its corpus, score held-out reconstructions per level, write examples;
    returns what the report shows."""
    config, run_dir = STAGES[name], out / f"{name}_vqvae"
    cfg = load_config(config, list(overrides))
    if not Path(cfg.data.root).exists():
        raise MissingFileError(f"data.root={cfg.data.root}: corpus not found; see data_scripts/ to generate it")
    t0 = time.time()
    log.info("[%s 1/4] training %d steps (hops %s)", name, cfg.train.max_steps, cfg.model.hops)
    train.run(parsed(train, config, *overrides, f"train.out_dir={run_dir}"))
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
    examples = write_examples(model, reader, held_out[: examples_n], out / f"{name}_examples", cfg.data.sample_rate,
                              cfg.model.pitch.stats if speech else None)
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
