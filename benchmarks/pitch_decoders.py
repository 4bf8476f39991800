"""Speech decoders side by side at equal wall-clock (issue 11): each trains from scratch for ``--minutes``.

Runs (all on ``configs/demo/speech_vqvae.yaml``, the demo's data, split, speaker table and seed):

* ``today``: the conv decoder without F0, waveform L1 + multi-resolution STFT (the decoder before issue 11);
* ``today+mel``: the same with the demo's multi-scale mel term added;
* ``nsf``: the conv decoder driven by an NSF excitation (sines at k * F0 + noise), spectral terms only;
* ``hpn``: the harmonic-plus-noise synthesizer (DDSP) driven by a frame-rate network: the demo's config.

Each run is trained with ``audiolvm train --time-limit``, then scored as a user would: ``audiolvm evaluate``
(mel distance, PESQ, STOI, F0 error, voicing error on the held-out utterances) and ``audiolvm evaluate-vc``
against the independent speaker classifier (own speaker of reconstructions, conversion target accuracy and
leakage, conversion F0 against the target's, phones read back from re-encoded conversions). Writes
``results.json``, ``results.md`` and ``curves.png`` (the held-out STFT log-magnitude term, which every run has,
against training minutes) under ``--out``.

Usage::

    python benchmarks/pitch_decoders.py --minutes 6
    python benchmarks/pitch_decoders.py --minutes 6 --runs hpn nsf --out outputs/pitch_decoders
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gan_equal_time import plot_curves, valid_curve  # noqa: E402

from audiolvm.builders import load_classifier, load_model  # noqa: E402
from audiolvm.core.audio import load_audio  # noqa: E402
from audiolvm.core.cpu import LoadMeter  # noqa: E402
from audiolvm.core.files import atomic_write_json, atomic_write_text  # noqa: E402
from audiolvm.core.pitch import PitchSettings, extract_pitch, hz_to_cents  # noqa: E402
from audiolvm.eval.evaluate import speech_pitch_settings  # noqa: E402
from audiolvm.eval.pitch import PitchReport, median_f0  # noqa: E402
from audiolvm.eval.reconstruction import multiscale_mel_distance  # noqa: E402
from audiolvm.eval.speaker import classify_wave  # noqa: E402

CONFIG = "configs/demo/speech_vqvae.yaml"
RATE = 16000  # the demo's speech rate
NO_PITCH = ["model.pitch.levels=[]", "loss.weights.waveform=1.0"]
RUNS = {
    "today": [*NO_PITCH, "loss.weights.mel=0.0"],
    "today+mel": NO_PITCH,
    "nsf": ["model.pitch.synth=nsf", "model.pitch.harmonics=8"],
    "hpn": [],
}
CLI = [sys.executable, "-m", "audiolvm_pipelines.cli"]


def train(name: str, out: Path, minutes: float, extra: list[str]) -> dict:
    meter, before = LoadMeter.start(), os.times()
    t0 = time.perf_counter()
    subprocess.run([*CLI, "train", CONFIG, *extra, f"train.out_dir={out / name}", "train.max_steps=1000000",
                    "train.ckpt_every=1000000", "train.valid_every=200", "train.progress=false",
                    "--time-limit", str(minutes)], check=True)
    seconds, after = time.perf_counter() - t0, os.times()
    children = (after.children_user + after.children_system - before.children_user - before.children_system)
    load = meter.other_load()  # counts the training process as "other": take its CPU time out
    state = json.loads(max((out / name / "checkpoints").glob("step_*/trainer_state.json")).read_text())
    return {"overrides": extra, "steps": state["step"], "seconds": seconds,
            "other_load_cores": None if load is None else max(0.0, load - children / seconds)}


def score(run: Path, classifier: str) -> dict:
    subprocess.run([*CLI, "evaluate", "--checkpoint", str(run), "--out", str(run / "eval")], check=True)
    subprocess.run([*CLI, "evaluate-vc", "--checkpoint", str(run), "--classifier", classifier, "--n-utterances", "0",
                    "--references", "3", "--out", str(run / "vc")], check=True)
    row = json.loads((run / "eval" / "metrics.json").read_text())[0]
    vc = json.loads((run / "vc" / "vc.json").read_text())
    keys = ["mel_distance", "pesq_wb", "stoi", "f0_cents_median", "f0_cents_p90", "vde"]
    return {**{k: row.get(k) for k in keys}, "own_speaker": vc["accuracy"]["reconstruction"],
            "target": vc["accuracy"]["converted_target"], "leakage": vc["accuracy"]["converted_source"],
            "vc_f0_to_target_cents": vc["pitch"]["to_target_cents"] if vc.get("pitch") else None,
            "content_original": vc["content"]["original"] if vc.get("content") else None,
            "content_converted": vc["content"]["converted"] if vc.get("content") else None}


COLUMNS = [("steps", "steps", "{:.0f}"), ("mel_distance", "mel dist.", "{:.3f}"), ("pesq_wb", "PESQ wb", "{:.2f}"),
           ("stoi", "STOI", "{:.3f}"), ("f0_cents_median", "F0 err. median", "{:.0f}"),
           ("f0_cents_p90", "F0 err. p90", "{:.0f}"), ("vde", "VDE", "{:.3f}"),
           ("own_speaker", "own speaker", "{:.3f}"),
           ("target", "conv. target", "{:.3f}"), ("leakage", "leakage", "{:.3f}"),
           ("vc_f0_to_target_cents", "conv. F0 to target's", "{:.0f}"),
           ("content_original", "phones orig.", "{:.3f}"), ("content_converted", "phones conv.", "{:.3f}")]


def markdown(results: dict) -> str:
    lines = [f"# Speech decoders at equal wall-clock: {results['minutes']} min each", ""]
    for name, run in results["runs"].items():
        given = " ".join([CONFIG, *run["overrides"]])
        lines.append(f"- {name}: {run['steps']} steps in {run['seconds']:.0f} s (`{given}`), other processes' load "
                     f"{run['other_load_cores'] or 0:.2f} cores")
    lines += ["", "| decoder | " + " | ".join(c[1] for c in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, row in results["scores"].items():
        row = {**row, "steps": results["runs"][name]["steps"]}
        cells = ["-" if row.get(k) is None else fmt.format(row[k]) for k, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "unseen" in results:
        keys = [("mel_distance", "mel dist.", "{:.3f}"), ("pesq_wb", "PESQ wb", "{:.2f}"), ("stoi", "STOI", "{:.3f}"),
                ("f0_cents_median", "F0 err. median", "{:.0f}"), ("f0_cents_p90", "F0 err. p90", "{:.0f}"),
                ("vde", "VDE", "{:.3f}"), ("conv_target", "conv. target", "{:.3f}"),
                ("conv_f0_cents", "conv. F0 to target's", "{:.0f}")]
        unseen = results["unseen"]
        lines += ["", f"Voices no run heard (`{unseen['folder']}`), reconstructed in the training voice nearest in F0 "
                  "and converted to 3 training voices each:",
                  "", "| decoder | items | " + " | ".join(k[1] for k in keys) + " |",
                  "|---|---:|" + "---:|" * len(keys)]
        for name, row in unseen["scores"].items():
            cells = ["-" if row.get(k) is None else fmt.format(row[k]) for k, _, fmt in keys]
            lines.append(f"| {name} | {row['items']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def unseen_voices(runs: dict[str, Path], folder: Path, classifier_run: str, targets: int = 3) -> dict[str, dict]:
    """Voices none of the models heard (the audio files in ``folder``, e.g. Festival's diphone voices, recorded from
    people), with each run:

    * reconstructed in the training voice whose mean ln F0 (from a pitch-aware run's ``config.json``) is nearest the
      clip's (the same voice for every run), scored against the clip: F0 error, voicing error, PESQ, STOI and the
      multi-scale mel distance;
    * converted to ``targets`` training voices (clip ``i`` to voices ``i, i + 12 / targets, ...`` of the sorted
      table; pitch mapped to the target's range): the independent classifier's target accuracy and the median
      distance of the conversion's median F0 to the target's mean, in cents.
    """
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".wav", ".flac"})
    if not files:
        sys.exit(f"{folder}: no .wav / .flac files to reconstruct")
    saved = (json.loads((run / "config.json").read_text())["model"]["pitch"]["stats"] for run in runs.values())
    stats = next(s for s in saved if s)
    names = sorted(n for n in stats if n != "*")
    waves = [load_audio(path, sample_rate=RATE)[0] for path in files]  # read once, for every run
    voices = []
    for wave in waves:
        f0, voiced = extract_pitch(wave.astype(np.float64), PitchSettings(sample_rate=RATE))
        clip = float(np.log(f0[voiced]).mean()) if voiced.any() else stats["*"][0]
        voices.append(min(names, key=lambda n: abs(stats[n][0] - clip)))
    classifier, _ = load_classifier(classifier_run)
    out = {}
    for name, run in runs.items():
        model, cfg = load_model(run)
        rate = cfg.data.sample_rate
        if rate != RATE:
            sys.exit(f"{run}: trained at {rate} Hz; this check reads the clips at {RATE} Hz")
        settings = speech_pitch_settings(model, rate)
        report, mel, hits, cents = PitchReport(settings), [], [], []
        for i, (wave, voice) in enumerate(zip(waves, voices, strict=True)):
            x = torch.from_numpy(wave)[None, None]
            y = model.reconstruct(x, 0, model.speaker.ids([voice]))[0, 0]
            report.add("clip", wave, y.numpy())
            mel.append(float(multiscale_mel_distance(y[None, None], x, rate)[0]))
            for j in range(targets):
                target = names[(i + j * len(names) // targets) % len(names)]
                converted = model.convert(x, model.speaker.ids([target]))[0, 0]
                hits.append(classify_wave(classifier, converted, rate) == target)
                cents.append(abs(hz_to_cents(median_f0(converted.numpy(), settings), math.exp(stats[target][0]))))
        out[name] = {**report.summary()["clip"], "mel_distance": float(np.mean(mel)),
                     "conv_target": float(np.mean(hits)), "conv_f0_cents": float(np.nanmedian(cents)),
                     "conversions": len(hits)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=6.0, help="training minutes of each run")
    p.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--classifier", default="outputs/demo/speaker_classifier",
                   help="speaker classifier run ('audiolvm train-classifier configs/demo/speaker_classifier.yaml')")
    p.add_argument("--out", default="outputs/pitch_decoders")
    p.add_argument("--unseen", default=None, metavar="DIR",
                   help="no training: reconstruct the audio files in DIR (voices no run heard) with every run of an "
                        "earlier call and add their scores to the results")
    args = p.parse_args()
    if not Path(args.classifier, "model.safetensors").is_file():
        sys.exit(f"{args.classifier}: no speaker classifier; train one with "
                 "'audiolvm train-classifier configs/demo/speaker_classifier.yaml' or pass --classifier")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = out / "results.json"
    results = json.loads(record.read_text()) if record.is_file() else {"runs": {}, "scores": {}}
    results["minutes"] = args.minutes
    if args.unseen:
        scores = unseen_voices({name: out / name for name in results["runs"]}, Path(args.unseen), args.classifier)
        results["unseen"] = {"folder": args.unseen, "scores": scores}
        atomic_write_json(record, results)
        atomic_write_text(out / "results.md", markdown(results))
        print(markdown(results))
        return
    for name in args.runs:  # runs of an earlier call with other --runs are kept
        results["runs"][name] = train(name, out, args.minutes, RUNS[name])
        results["scores"][name] = score(out / name, args.classifier)
        atomic_write_json(record, results)
    plot_curves({name: valid_curve(out / name, "stft/logmag") for name in results["runs"]}, out / "curves.png",
                "held-out STFT log-magnitude term")
    atomic_write_text(out / "results.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
