"""Adversarial against non-adversarial fine-tuning at equal wall-clock, from the same warm start (issue 15).

Both runs start from one trained demo VQ-VAE (``--source``, default the demo's own run) and train for ``--minutes``
each (``--time-limit``), one after the other, with the same learning rate (1e-4, constant):

* ``plain``: the model's own terms (speech: MR-STFT + multi-scale mel; music: the same at every level);
* ``adversarial``: the same terms plus discriminators (``configs/demo/<corpus>_vqvae_gan.yaml``).

Then every run and the warm start are scored on the held-out split with the project's evaluation (mel distance,
MR-STFT distance, SI-SDR per level; for speech also PESQ, STOI, F0 error, voicing error, and the independent
speaker classifier's accuracy on the reconstructions), and the script writes, under ``--out``:

* ``results_<name>.json``, ``results_<name>.md``: the table, the steps each run took, and the other processes'
  CPU load (``<name>``: the adversarial run's, ``--name``; variants of it can share one plain run, ``--reuse-plain``);
* ``curves_<name>.png``: held-out mel term against training minutes for both runs (where they cross, if they do);
* ``<name>/<item>.png``: spectrograms of held-out items, original / warm start / plain / adversarial (speech: level
  0; music: every level).

Usage::

    python benchmarks/gan_equal_time.py --corpus speech --minutes 12
    python benchmarks/gan_equal_time.py --corpus music --minutes 8 --out outputs/gan_equal_time
    python benchmarks/gan_equal_time.py --corpus speech --minutes 12 --reuse-plain --name dac_ratio \
        --gan-overrides loss.weights.adv/gen=0.067 loss.weights.adv/feat=0.133
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from audiolvm.builders import load_classifier, load_model, split_entries_for  # noqa: E402
from audiolvm.config import ExperimentConfig  # noqa: E402
from audiolvm.core.cpu import LoadMeter  # noqa: E402
from audiolvm.core.files import atomic_write_json, atomic_write_text  # noqa: E402
from audiolvm.data import iter_audio  # noqa: E402
from audiolvm.engine.logs import read_series  # noqa: E402
from audiolvm.eval import evaluate_model  # noqa: E402
from audiolvm.eval.evaluate import compare_spectrograms, own_speaker, speech_pitch_settings  # noqa: E402
from audiolvm.eval.plots import pyplot  # noqa: E402
from audiolvm.eval.speaker import classify_wave  # noqa: E402
from audiolvm.models import MultiLevelAutoencoder  # noqa: E402
from audiolvm_pipelines import train  # noqa: E402

COMMON = ["train.lr=1e-4", "train.warmup_steps=0", "train.schedule=constant", "train.max_steps=1000000",
          "train.log_every=20", "train.ckpt_every=1000000", "train.progress=false"]
COLUMNS = ["mel_distance", "mrstft_distance", "si_sdr_db", "pesq_wb", "stoi", "f0_cents_median", "vde"]


def train_run(name: str, config: str, source: Path, out: Path, minutes: float, valid_every: int,
              extra: list[str], reuse: bool = False) -> dict:
    """Train one run (or, with ``reuse``, read back the one already in ``out/name`` from an earlier call)."""
    record = out / name / "run.json"
    if reuse and record.is_file():
        return json.loads(record.read_text())
    meter = LoadMeter.start()
    t0 = time.perf_counter()
    train.run(argparse.Namespace(config=config, resume=False, stop_after=None, time_limit=minutes, overrides=[
        *COMMON, f"train.out_dir={out / name}", f"train.init_from={source}", f"train.valid_every={valid_every}",
        *extra]))
    state = json.loads(max((out / name / "checkpoints").glob("step_*/trainer_state.json")).read_text())
    run = {"config": config, "overrides": extra, "steps": state["step"], "seconds": time.perf_counter() - t0,
           "other_load_cores": meter.other_load()}
    atomic_write_json(record, run)
    return run


def valid_curve(run: Path, key: str = "mel") -> tuple[list[float], list[float]]:
    """(minutes, held-out ``key`` term) of a run, minutes from its logged steps per second."""
    series = read_series(run / "metrics.csv")
    steps, rates = series["time/steps_per_s"]["train"]
    clock, last, t = {}, 0, 0.0
    for step, rate in zip(steps, rates, strict=True):
        t += (step - last) / rate
        clock[step], last = t / 60, step
    mel = next(v["valid"] for k, v in series.items() if k.endswith(key) and "valid" in v)
    return [clock[s] for s in mel[0] if s in clock], [v for s, v in zip(*mel, strict=True) if s in clock]


def score(model: MultiLevelAutoencoder, cfg: ExperimentConfig, speech: bool, classifier_run: Path | None) -> dict:
    reader, selected = split_entries_for(cfg, "valid")
    entries = [e for e, _ in selected]
    pitch = speech_pitch_settings(model, cfg.data.sample_rate) if speech else None
    report = evaluate_model(model, reader, entries, cfg.data.sample_rate, progress=False, pitch=pitch)
    rows = {r["level"]: {k: r.get(k) for k in COLUMNS if r.get(k) is not None} for r in report.rows()
            if r["level"].startswith("level")}
    if classifier_run is not None:
        classifier, _ = load_classifier(classifier_run)
        hits = []
        with torch.no_grad():
            for entry, wave in iter_audio(reader, entries, cfg.data.sample_rate, "classify", False):
                x, who = torch.from_numpy(wave)[None, None], own_speaker(model, entry.speaker)
                recon = model.reconstruct(x, speaker=who)[0]
                hits.append(classify_wave(classifier, recon, cfg.data.sample_rate) == entry.speaker)
        rows[next(iter(rows))]["speaker_accuracy"] = float(np.mean(hits))
    return rows


def plot_curves(curves: dict[str, tuple[list[float], list[float]]], png: Path,
                ylabel: str = "held-out mel term") -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, (minutes, mel) in curves.items():
        ax.plot(minutes, mel, marker="o", ms=3, label=label)
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def markdown(results: dict) -> str:
    lines = [f"# {results['corpus']}: plain vs adversarial fine-tuning, {results['minutes']} min each", ""]
    for name, run in results["runs"].items():
        given = " " + " ".join(run.get("overrides", [])) if run.get("overrides") else ""
        lines.append(f"- {name}: {run['steps']} steps in {run['seconds']:.0f} s (`{run['config']}{given}`), other "
                     f"processes' load {run['other_load_cores']:.2f} cores")
    lines.append("")
    columns = sorted({k for rows in results["scores"].values() for row in rows.values() for k in row},
                     key=lambda k: (COLUMNS + ["speaker_accuracy"]).index(k))
    lines += ["| run | level | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
    for run, rows in results["scores"].items():
        for level, row in rows.items():
            lines.append(f"| {run} | {level} | " + " | ".join(f"{row[c]:.3f}" if c in row else "-" for c in columns)
                         + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", choices=["speech", "music"], default="speech")
    p.add_argument("--minutes", type=float, default=12.0, help="training minutes of each run")
    p.add_argument("--source", default=None, help="warm start run (default outputs/demo/<corpus>_vqvae)")
    p.add_argument("--classifier", default="outputs/demo/speaker_classifier",
                   help="speaker classifier run for speech ('' to skip)")
    p.add_argument("--out", default="outputs/gan_equal_time")
    p.add_argument("--items", type=int, default=2, help="held-out items drawn as spectrograms")
    p.add_argument("--name", default="adversarial", help="the adversarial run's name (a variant: another name)")
    p.add_argument("--gan-overrides", nargs="*", default=[],
                   help="key=value overrides of the adversarial run, e.g. loss.weights.adv/gen=0.1")
    p.add_argument("--reuse-plain", action="store_true",
                   help="keep the plain run of an earlier call with the same --out (same minutes) instead of training "
                        "it again")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    corpus, speech = args.corpus, args.corpus == "speech"
    source = Path(args.source or f"outputs/demo/{corpus}_vqvae")
    out = Path(args.out) / corpus
    out.mkdir(parents=True, exist_ok=True)
    runs = {"plain": train_run("plain", f"configs/demo/{corpus}_vqvae.yaml", source, out, args.minutes, 200, [],
                               args.reuse_plain),
            args.name: train_run(args.name, f"configs/demo/{corpus}_vqvae_gan.yaml", source, out, args.minutes, 80,
                                 args.gan_overrides)}
    classifier = Path(args.classifier) if speech and args.classifier else None
    paths = {"warm start": source, "plain": out / "plain", args.name: out / args.name}
    loaded = {label: load_model(path) for label, path in paths.items()}
    results = {"corpus": corpus, "minutes": args.minutes, "runs": runs,
               "scores": {label: score(m, cfg, speech, classifier) for label, (m, cfg) in loaded.items()},
               "curves": {label: valid_curve(out / label) for label in runs}}
    cfg = loaded[args.name][1]
    reader, selected = split_entries_for(cfg, "valid")
    held_out = [e for e, _ in selected][: args.items]
    pngs = compare_spectrograms({label: m for label, (m, _) in loaded.items()}, reader, held_out, cfg.data.sample_rate,
                                out / args.name, "held out")
    results["examples"] = [str(png) for png in pngs]
    plot_curves(results["curves"], out / f"curves_{args.name}.png")
    atomic_write_json(out / f"results_{args.name}.json", results)
    atomic_write_text(out / f"results_{args.name}.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
