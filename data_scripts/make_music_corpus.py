"""Render a music corpus: J.S. Bach's chorales from music21's bundled corpus, each played by
a seeded General MIDI ensemble (strings, brass, woodwinds, choir, organ, keyboard, guitar or mixed)
through the fluidsynth synthesizer. Everything works offline.

Layout (``<track_id>`` is the corpus file name, e.g. ``bwv269``, ``bwv153.1``; unique)::

    audio/<track_id>.flac   mono FLAC at --rate Hz (cropped to --max-seconds when given)
    midi/<track_id>.mid     the full-length MIDI that was rendered (one channel per part)
    metadata.csv            track_id, bwv, riemenschneider, title, ensemble, programs (JSON: part ->
                            [GM program, instrument]), key, duration_s, midi_duration_s, rate, soundfont, gain
    corpus.json, README.md  settings, versions, skipped chorales; the regeneration command

Needs ``pip install -e '.[music]'`` (music21, mido) and ``sudo apt-get install fluidsynth`` plus a
soundfont (``fluid-soundfont-gm`` or ``timgm6mb-soundfont``). Deterministic under ``--seed``,
whatever ``--workers``: the chorale order and ensembles come from the seed, each part's program
from ``(seed, track_id)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing as mp
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiolvm.core.audio import quantize, save_audio  # noqa: E402
from audiolvm.core.seed import derived_rng  # noqa: E402
from data_scripts import chorales as ch  # noqa: E402
from data_scripts import synth  # noqa: E402

LOG = logging.getLogger("audiolvm.data_scripts.music")
RATES = (16000, 22050, 44100)
COLUMNS = ("track_id", "bwv", "riemenschneider", "title", "ensemble", "programs", "key", "duration_s",
           "midi_duration_s", "rate", "soundfont", "gain")  # fmt: skip


@dataclass(frozen=True)
class MusicOptions:
    """Rendering and storage settings (everything but which chorales and the output rate)."""

    max_seconds: float | None = None  # crop each track's audio to its first N seconds (None: whole)
    synth_rate: int = 44100  # fluidsynth's rate; soxr resamples to --rate (no synthesis aliasing)
    fs_gain: float = 0.8  # fluidsynth -g
    gain: float = 1.0  # applied after rendering; lowered per track if the peak would exceed 0.99
    bits: int = 16  # effective bits in the FLAC (12: about 40% smaller, as for data/speech)
    max_tail: float = 1.0  # seconds of release kept after the MIDI ends
    crop_fade: float = 0.5  # fade-out (s) at a --max-seconds cut
    workers: int = 1  # processes; never changes the output


@dataclass(frozen=True)
class Job:
    """One chorale to render, with its ensemble and the key of its private random stream."""

    chorale: ch.Chorale
    ensemble: str
    seed: int


def plan_jobs(chorales: list[ch.Chorale], seed: int) -> list[Job]:
    """Every chorale in a seeded order; ensembles cycle through a seeded permutation along that
    order, so any prefix of the plan is balanced across ensembles."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(chorales))
    names = [ch.ENSEMBLE_NAMES[i] for i in rng.permutation(len(ch.ENSEMBLE_NAMES))]
    return [Job(chorales[i], names[k % len(names)], seed) for k, i in enumerate(order)]


def select_tracks(plan: list[Job], tracks: Sequence[str] | None) -> list[Job]:
    """The jobs of ``plan`` whose track id is in ``tracks`` (all if None); ValueError for unknown ids."""
    if tracks is None:
        return plan
    known = {job.chorale.track_id for job in plan}
    unknown = sorted(set(tracks) - known)
    if unknown:
        raise ValueError(f"--tracks: unknown track ids {unknown}; ids are corpus file names such as "
                         f"{', '.join(sorted(known)[:3])} (see metadata.csv of a full corpus)")  # fmt: skip
    wanted = set(tracks)
    return [job for job in plan if job.chorale.track_id in wanted]


class ChoraleSkipped(Exception):
    """A chorale that music21 cannot parse or export (e.g. bwv277: badly formed repeats)."""


def score_to_midi(job: Job, midi_path: Path) -> dict:
    """Parse the chorale, choose its programs and write its MIDI; metadata fields for the row."""
    music21, _ = ch.require_music21()
    rng = derived_rng(job.seed, zlib.crc32(job.chorale.track_id.encode()))
    try:
        score = music21.corpus.parse(job.chorale.source)
        names = ch.part_names(score)
        programs = ch.choose_programs(job.ensemble, ch.registers(score), rng)
        key = ch.score_key(score)
        midi_path.parent.mkdir(parents=True, exist_ok=True)
        programs = ch.export_midi(score, programs, midi_path)
    except Exception as exc:  # music21 raises many types (ExpanderException, MusicXMLImportException...)
        raise ChoraleSkipped(f"{type(exc).__name__}: {exc}") from exc
    return {"programs": {n: [p, ch.GM_NAMES[p]] for n, p in zip(names, programs, strict=True)}, "key": key}


def render_track(job: Job, out: Path, rate: int, soundfont: Path, opts: MusicOptions) -> dict:
    """Write ``midi/<id>.mid`` and ``audio/<id>.flac`` for one chorale; return its metadata row.

    Raises ChoraleSkipped when music21 fails on the score or fluidsynth never finishes (other
    fluidsynth failures are raised as is: they concern every track).
    """
    c = job.chorale
    midi_path = out / "midi" / f"{c.track_id}.mid"
    fields = score_to_midi(job, midi_path)
    seconds = ch.midi_seconds(midi_path)
    try:
        wave = synth.render_midi(midi_path, soundfont, opts.synth_rate, rate, opts.fs_gain, 60 + 2 * seconds)
    except TimeoutError as exc:
        raise ChoraleSkipped(str(exc)) from exc
    wave = synth.trim_tail(wave, rate, seconds, opts.max_tail)  # (T,) at rate
    if opts.max_seconds and wave.size > opts.max_seconds * rate:
        wave = synth.fade_out(wave[: int(opts.max_seconds * rate)], int(opts.crop_fade * rate))
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    gain = min(opts.gain, 0.99 / peak) if peak > 0 else opts.gain
    wave = quantize(wave * np.float32(gain), opts.bits)
    save_audio(out / "audio" / f"{c.track_id}.flac", wave, rate)  # not with_suffix: ids may hold dots
    return {"track_id": c.track_id, "bwv": c.bwv, "riemenschneider": c.number, "title": c.title,
            "ensemble": job.ensemble, "programs": fields["programs"], "key": fields["key"],
            "duration_s": round(wave.size / rate, 4), "midi_duration_s": round(seconds, 4), "rate": rate,
            "soundfont": soundfont.name, "gain": round(gain, 4)}  # fmt: skip


def _render_or_skip(args: tuple[Job, Path, int, Path, MusicOptions]) -> dict:
    try:
        return render_track(*args)
    except ChoraleSkipped as exc:
        return {"track_id": args[0].chorale.track_id, "error": str(exc)}


def _render_all(jobs: list[Job], out: Path, rate: int, soundfont: Path, opts: MusicOptions) -> list[dict]:
    """Render ``jobs`` (in order, ``opts.workers`` processes) with a tqdm bar; rows or error records."""
    from tqdm import tqdm

    tasks = [(job, out, rate, soundfont, opts) for job in jobs]
    bar = tqdm(total=len(tasks), desc="rendering", unit="chorale")
    if opts.workers <= 1 or len(tasks) < 2:
        results = []
        for task in tasks:
            results.append(_render_or_skip(task))
            bar.update()
    else:
        ctx = mp.get_context("forkserver")  # clean workers (no inherited torch/tqdm threads)
        ctx.set_forkserver_preload([__name__])
        with ctx.Pool(min(opts.workers, len(tasks))) as pool:
            results = []
            for row in pool.imap(_render_or_skip, tasks):
                results.append(row)
                bar.update()
    bar.close()
    return results


def check_settings(n: int, rate: int, opts: MusicOptions) -> None:
    """Fail before rendering anything, naming the flag to fix."""
    checks = [
        (n >= 0, f"--n {n}: need 0 (all chorales) or more"),
        (rate in RATES, f"--rate {rate}: choose one of {', '.join(map(str, RATES))}"),
        (opts.synth_rate >= rate, f"--synth-rate {opts.synth_rate}: must be >= --rate {rate}"),
        (opts.max_seconds is None or opts.max_seconds > 0, f"--max-seconds {opts.max_seconds}: must be > 0"),
        (8 <= opts.bits <= 16, f"--bits {opts.bits}: choose 8..16 effective bits"),
        (opts.gain > 0 and opts.fs_gain > 0, f"--gain {opts.gain} / --fs-gain {opts.fs_gain}: must be > 0"),
    ]
    problems = [message for ok, message in checks if not ok]
    if problems:
        raise ValueError("; ".join(problems))


def generate_music_corpus(
    out: str | Path,
    n: int = 0,
    rate: int = 16000,
    seed: int = 0,
    soundfont: str | Path | None = None,
    options: MusicOptions | None = None,
    tracks: Sequence[str] | None = None,
) -> dict:
    """Render ``n`` chorales (0: all) under ``out``; return the summary also saved as ``corpus.json``.

    Chorales that music21 cannot export are skipped, logged and replaced by the next ones in the
    seeded order, so ``n`` tracks are written whenever the corpus has that many exportable ones.
    ``tracks`` keeps only those track ids (each with the ensemble it has in the full corpus).
    """
    out, opts = Path(out), options or MusicOptions()
    check_settings(n, rate, opts)
    font, _ = synth.find_soundfont(soundfont), synth.fluidsynth_binary()  # fail early, naming what to install
    chorales, duplicates = ch.list_chorales()
    plan = select_tracks(plan_jobs(chorales, seed), tracks)
    want = n or len(plan)
    rows: list[dict] = []
    failed: dict[str, str] = {}
    while len(rows) < want and plan:
        batch, plan = plan[: want - len(rows)], plan[want - len(rows) :]
        for result in _render_all(batch, out, rate, font, opts):
            if "error" in result:
                LOG.warning("skipping chorale %s: %s", result["track_id"], result["error"])
                failed[result["track_id"]] = result["error"]
            else:
                rows.append(result)
    if not rows:
        raise RuntimeError(f"{out}: no chorale could be rendered; first failure: {next(iter(failed.items()), None)}")
    rows.sort(key=lambda r: r["riemenschneider"])
    write_metadata(out / "metadata.csv", rows)
    settings = dict(n=n, rate=rate, seed=seed, soundfont=str(font), tracks=list(tracks) if tracks else None)
    return write_summary(out, settings, opts, rows, failed, duplicates)


def write_metadata(path: Path, rows: list[dict]) -> None:
    """``metadata.csv`` with :data:`COLUMNS`; ``programs`` is a JSON object part -> [program, name]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "programs": json.dumps(row["programs"], ensure_ascii=False)})


README = """# Rendered music corpus: Bach chorales (music21) played by General MIDI ensembles

{tracks} chorales, {seconds:.0f} s of audio, made by `data_scripts/make_music_corpus.py` (settings,
versions and skipped chorales in `corpus.json`). Scores: J.S. Bach's chorales as shipped in the
music21 {music21} corpus (`music21.corpus.chorales.Iterator()`, one track per distinct file).
Each chorale is played by one seeded *ensemble*: {ensembles}.
Its parts get that ensemble's General MIDI programs by register, so timbres differ between parts
and between tracks. Rendered with fluidsynth {fluidsynth} and the `{soundfont}` soundfont at
{synth_rate} Hz, downmixed to mono and resampled with soxr.

- `audio/<track_id>.flac`: mono FLAC at **{rate} Hz**, rounded to {bits} effective bits; {crop}.
- `midi/<track_id>.mid`: the whole MIDI file that was rendered (one channel and program per part).
- `metadata.csv`: {columns}.
  `programs` is JSON: part name -> [GM program (0-based), instrument].
  `gain` is the factor applied after rendering (below {gain} when the peak would pass 0.99).

`audiolvm.data.MusicCorpusReader` (or `open_corpus`, kind "music") reads it: utterance = track id,
speaker = ensemble (a timbre label), text = title.

Regenerate (same audio with the same music21, fluidsynth and soundfont, whatever `--workers`):
`{command}`
"""


def command_line(out: Path, flags: dict) -> str:
    """``python data_scripts/make_music_corpus.py --out OUT --key value ...`` (None left out, lists spread)."""
    parts = ["python data_scripts/make_music_corpus.py", f"--out {out}"]
    for key, value in flags.items():
        if value is not None:
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            parts.append(f"--{key.replace('_', '-')} {shown}")
    return " ".join(parts)


def write_summary(out: Path, settings: dict, opts: MusicOptions, rows: list[dict], failed: dict,
                  duplicates: list[int]) -> dict:  # fmt: skip
    """Write ``corpus.json`` and ``README.md``; return the summary."""
    music21, _ = ch.require_music21()
    options = {k: v for k, v in asdict(opts).items() if k != "workers"}
    summary = {"generator": "data_scripts/make_music_corpus.py", "command": command_line(out, {**settings, **options}),
               "music21": music21.__version__, "fluidsynth": synth.fluidsynth_version(),
               **{k: v for k, v in settings.items() if k != "tracks"}, "selected_tracks": settings["tracks"],
               "options": options, "tracks": len(rows), "seconds": round(sum(r["duration_s"] for r in rows), 3),
               "ensembles": dict(sorted(Counter(r["ensemble"] for r in rows).items())),
               "failed": failed, "duplicate_riemenschneider_numbers": duplicates}  # fmt: skip
    (out / "corpus.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    crop = (f"the first {opts.max_seconds:g} s of each chorale (a {opts.crop_fade:g} s fade-out at the cut)"
            if opts.max_seconds else "whole chorales")  # fmt: skip
    crop += f"; a chorale ends {opts.max_tail:g} s or less after its MIDI file (the notes' release)"
    fields = {**summary, **options, "soundfont": Path(settings["soundfont"]).name, "crop": crop,
              "ensembles": ", ".join(ch.ENSEMBLE_NAMES), "columns": ", ".join(COLUMNS)}  # fmt: skip
    text = README.format(**fields)
    (out / "README.md").write_text(text, encoding="utf-8")
    return summary


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the module docstring's layout."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = MusicOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--rate", type=int, default=16000, choices=RATES, help="output sample rate in Hz")
    p.add_argument("--n", type=int, default=0, help="number of chorales (0: all, about 348)")
    p.add_argument("--seed", type=int, default=0, help="seed for the chorale order, ensembles and programs")
    p.add_argument("--soundfont", type=Path, default=None,
                   help="General MIDI .sf2 (when not given: FluidR3_GM.sf2, else TimGM6mb.sf2 from Debian "
                        "or from the pretty_midi package)")  # fmt: skip
    p.add_argument("--tracks", nargs="+", default=None, metavar="ID", help="render only these track ids")
    p.add_argument("--max-seconds", type=float, default=None, help="crop each track to its first N seconds")
    p.add_argument("--synth-rate", type=int, default=d.synth_rate, help="fluidsynth's rendering rate in Hz")
    p.add_argument("--fs-gain", type=float, default=d.fs_gain, help="fluidsynth master gain (-g)")
    p.add_argument("--gain", type=float, default=d.gain, help="gain after rendering (lowered to avoid clipping)")
    p.add_argument("--bits", type=int, default=d.bits, help="effective bits per sample in the FLAC, 8..16")
    p.add_argument("--max-tail", type=float, default=d.max_tail, help="seconds of release kept after the MIDI")
    p.add_argument("--crop-fade", type=float, default=d.crop_fade, help="fade-out in seconds at a crop")
    p.add_argument("--workers", type=int, default=max(1, mp.cpu_count() or 1), help="processes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    a = vars(parse_args(argv))
    opts = MusicOptions(**{k: a[k] for k in MusicOptions.__dataclass_fields__})
    summary = generate_music_corpus(a["out"], a["n"], a["rate"], a["seed"], a["soundfont"], opts, a["tracks"])
    print(f"{a['out']}: {summary['tracks']} chorales, {summary['seconds']:.1f} s at {a['rate']} Hz; "
          f"skipped {len(summary['failed'])} ({', '.join(summary['failed']) or 'none'})")  # fmt: skip


if __name__ == "__main__":
    # Run through the importable module, so worker processes find every function by its real name.
    from data_scripts.make_music_corpus import main as _main

    _main()
