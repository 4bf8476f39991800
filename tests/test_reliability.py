"""What a run survives: real kills at random moments and inside the checkpoint window, a malformed corpus, bad
command lines and bad files, and divergence. Each figure in README's Reliability section comes from here:
``pytest tests/test_reliability.py -v``."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolvm.builders import load_model
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.data import FolderReader
from audiolvm.engine.checkpoint import exported_step, latest_checkpoint, load_weights
from audiolvm.engine.logs import read_series
from audiolvm_pipelines.cli import main
from tests.fixtures_audio import noise, write

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")
DATA = f"data.root={ROOT / 'data' / 'speech'}"
QUIET = ["train.progress=false", "train.tensorboard=false"]
WORKER = ROOT / "tests" / "soak_worker.py"


# --------------------------------------------------------------------------------------------- kill and resume
def _worker(out: Path, max_steps: int, die: str | None = None) -> subprocess.Popen:
    argv = [sys.executable, str(WORKER), str(out), str(max_steps)] + ([die] if die else [])
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def _export_is_current(out: Path) -> bool:
    """The export is never older than the newest checkpoint (it is written first)."""
    newest = latest_checkpoint(out / "checkpoints")
    return newest is None or (exported_step(out / "model.safetensors") or -1) >= int(newest.name.split("_")[1])


def test_kill_and_resume_soak(tmp_path: Path) -> None:
    """12 SIGKILLs of a real training process, each followed by --resume: 5 at random moments of training and
    7 inside the checkpoint window (after the export, after the publish, after the rotation; 2 of them at the
    final step, where a stale export used to survive). After every kill the export is at least as new as the
    newest checkpoint; the run ends with weights bitwise equal to an uninterrupted run, and its export is of
    the final step. (The worker's rate is constant, so the kills run with a far-off max_steps and the final
    step is fixed only once they are done: a fast machine cannot finish the run between two kills.)"""
    rng, out, kills, far = random.Random(0), tmp_path / "run", 0, 10_000
    plan = ["random", "export", "random", "publish", "random", "rotate", "random", "export", "random", "publish"]
    for what in plan + ["export@final", "publish@final"]:
        if what == "export@final":
            newest = latest_checkpoint(out / "checkpoints")
            far = (int(newest.name.split("_")[1]) if newest else 0) + 8  # the final step, a few steps ahead
        proc = _worker(out, far, None if what == "random" else what)
        if what == "random":
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.6))
            proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=120) == -signal.SIGKILL, f"kill {what}: the run finished before it"
        kills += 1
        assert _export_is_current(out), f"after kill {kills} ({what})"
    assert kills == 12
    for folder in (out, tmp_path / "ref"):  # finish the killed run; train the same steps uninterrupted
        assert _worker(folder, far).wait(timeout=120) == 0
    want, got = load_weights(tmp_path / "ref" / "model.safetensors"), load_weights(out / "model.safetensors")
    assert exported_step(out / "model.safetensors") == far
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


# --------------------------------------------------------------------------------------------- malformed corpus
def _malformed_corpus(root: Path) -> dict[str, str]:
    """8 good 1 s files of two speakers plus every kind of bad file; returns {bad file name: reason prefix}."""
    t = np.arange(16000) / 16000
    for k in range(8):
        (root / f"spk{k % 2}").mkdir(parents=True, exist_ok=True)
        wave = 0.3 * np.sin(2 * np.pi * (150 + 40 * k) * t) + 0.02 * noise(16000, seed=k)
        sf.write(str(root / f"spk{k % 2}" / f"good{k}.wav"), wave.astype(np.float32), 16000)
    bad = root / "spk0"
    write(bad / "stereo48k.flac", 48000, 48000, channels=2, seed=11)  # valid: downmixed and resampled
    write(bad / "eight_bit.wav", 16000, 16000, seed=12, subtype="PCM_U8")  # valid
    write(bad / "one_sample.wav", 1, 16000, seed=13)  # valid, shorter than a crop: zero-padded
    (bad / "zero.wav").write_bytes(b"")
    (bad / "header_only.wav").write_bytes((bad / "good0.wav").read_bytes()[:30])
    (bad / "random.flac").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    (bad / "text.wav").write_text("this is not audio\n")
    nan = noise(16000, seed=14)
    nan[500], nan[900] = np.nan, np.inf
    sf.write(str(bad / "nan_inf.wav"), nan, 16000, subtype="FLOAT")
    sf.write(str(bad / "silent_10min.flac"), np.zeros(16000 * 600, np.float32), 16000)
    sf.write(str(bad / "one_hz.wav"), np.full(100, 0.1, np.float32), 1)
    sf.write(str(bad / "two_ghz.wav"), np.full(100, 0.1, np.float32), 2_000_000_000)
    os.symlink(bad / "missing.wav", bad / "dangling.wav")
    reasons = {"zero.wav": "0 bytes", "header_only.wav": "unreadable by soundfile", "random.flac": "unreadable",
               "text.wav": "unreadable", "nan_inf.wav": "non-finite samples", "silent_10min.flac": "silent",
               "one_hz.wav": "sample rate outside", "two_ghz.wav": "sample rate outside",
               "dangling.wav": "dangling link"}
    try:
        with open(os.path.join(os.fsencode(bad), "caf\xe9.wav".encode("latin-1")), "wb") as f:
            f.write((bad / "good0.wav").read_bytes())
        reasons["caf"] = "file name is not valid UTF-8"
    except OSError:
        pass  # a filesystem that refuses non-UTF-8 names cannot hold this kind
    return reasons


def test_a_malformed_corpus_is_named_skips_and_trains_with_a_finite_loss(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    reasons = _malformed_corpus(corpus)
    reader = FolderReader(corpus)
    names = sorted(Path(e.path).name for e in reader.entries())
    assert names == sorted([f"good{k}.wav" for k in range(8)] + ["stereo48k.flac", "eight_bit.wav", "one_sample.wav"])
    skipped = {Path(p).name: r for p, r in reader.skipped_files}
    for name, prefix in reasons.items():
        hit = [r for n, r in skipped.items() if n.startswith(name)]
        assert len(hit) == 1 and hit[0].startswith(prefix), (name, hit)
    assert len(skipped) == len(reasons)
    out = tmp_path / "run"
    assert main(["train", TINY, f"data.root={corpus}", f"train.out_dir={out}", "train.max_steps=8",
                 "train.log_every=1", "data.valid_fraction=0.1", *QUIET]) == 0
    losses = read_series(out / "metrics.csv")["loss"]["train"][1]
    assert len(losses) == 8 and all(np.isfinite(losses)) and max(losses) < 20  # all-zero crops gave 1,415


# --------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rel") / "run"
    assert main(["train", TINY, DATA, f"train.out_dir={out}", "train.max_steps=4", "train.ckpt_every=2", *QUIET]) == 0
    return out


def _copy(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns(".audiolvm.lock"))
    return dst


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


SRC = next((ROOT / "data" / "speech").rglob("*.flac"))
TRAIN = ["train", TINY, DATA, *QUIET]


def _cases(run: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    """{name: (argv, text the one-line error must contain)}; files are broken in copies of ``run``."""
    trunc = _copy(run, tmp / "trunc")
    _truncate(trunc / "model.safetensors", 1000)
    empty = _copy(run, tmp / "empty")
    _truncate(empty / "model.safetensors", 0)
    badcfg = _copy(run, tmp / "badcfg")
    (badcfg / "config.json").write_text('{"data": {"root": ')
    state = _copy(run, tmp / "state")
    for step in (2, 4):
        (state / "checkpoints" / f"step_00000{step}" / "trainer_state.json").write_text("{oops")
    wide = _copy(run, tmp / "wide")
    junk = tmp / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEjunk")
    recon = ["reconstruct", "--checkpoint"]
    return {
        **{f"{k}=0": ([*TRAIN, f"train.{k}=0", f"train.out_dir={tmp / k}"], f"train.{k}")
           for k in ("ckpt_every", "log_every", "valid_every", "grad_accum")},
        "max_steps=-5": ([*TRAIN, "train.max_steps=-5", f"train.out_dir={tmp / 'm'}"], "train.max_steps"),
        "lr=-1": ([*TRAIN, "train.lr=-1", f"train.out_dir={tmp / 'l'}"], "train.lr"),
        "empty data.root": ([*TRAIN, "data.root=", f"train.out_dir={tmp / 'r'}"], "data.root"),
        "!!python tag": ([*TRAIN, "train.lr=!!python/object/apply:os.system ['true']"], "train.lr"),
        "unknown key": ([*TRAIN, "train.max_stepz=3"], "train.max_stepz"),
        "missing config": (["train", str(tmp / "nope.yaml")], "nope.yaml"),
        "truncated model.safetensors": ([*recon, str(trunc), "--input", str(SRC), "--output", str(tmp / "o.wav")],
                                        str(trunc / "model.safetensors")),
        "0-byte model.safetensors": (["info", "--checkpoint", str(empty)], str(empty / "model.safetensors")),
        "corrupt config.json": ([*recon, str(badcfg), "--input", str(SRC), "--output", str(tmp / "o.wav")],
                                str(badcfg / "config.json")),
        "corrupt trainer_state.json": ([*TRAIN, f"train.out_dir={state}", "train.max_steps=6", "--resume"],
                                       "trainer_state.json"),
        "model.width changed on --resume": ([*TRAIN, f"train.out_dir={wide}", "train.max_steps=6", "model.width=24",
                                             "--resume"], "model.width: 16 -> 24"),
        "bad audio file": ([*recon, str(run), "--input", str(junk), "--output", str(tmp / "o.wav")], str(junk)),
        "missing audio file": ([*recon, str(run), "--input", str(tmp / "none.wav"), "--output", str(tmp / "o.wav")],
                               "none.wav"),
        "sample --n -1": (["sample", "--vqvae", str(run), "--prior", str(run), "--n", "-1", "--out", str(tmp / "s")],
                          "--n -1"),
        "sample --seconds inf": (["sample", "--vqvae", str(run), "--prior", str(run), "--seconds", "inf", "--out",
                                  str(tmp / "s")], "--seconds inf"),
        "sample --seconds -1": (["sample", "--vqvae", str(run), "--prior", str(run), "--seconds", "-1", "--out",
                                 str(tmp / "s")], "--seconds -1"),
        "a prior that is not one": (["sample", "--vqvae", str(run), "--prior", str(run), "--out", str(tmp / "s")],
                                    str(run)),
    }


def test_every_bad_input_is_one_line_naming_the_field_or_file(run: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    """21 bad inputs: exit code 2 and a final stderr line ``audiolvm CMD: error: ...`` that names the field or
    file (log warnings may precede it, a traceback may not)."""
    cases = _cases(run, tmp_path)
    failures = []
    for name, (argv, must) in cases.items():
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if code != 2 or "Traceback" in err or not last.startswith(f"audiolvm {argv[0]}: error:") or must not in last:
            failures.append(f"{name}: exit {code}, {last[:300]!r}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------------------------- checkpoints
def test_resume_falls_back_past_a_checkpoint_that_fails_to_load(run: Path, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A truncated optimizer.bin in the newest checkpoint: --resume names it, resumes from the one before, and
    retraining from there gives the weights of the uninterrupted run, bitwise."""
    broken = _copy(run, tmp_path / "broken")
    _truncate(broken / "checkpoints" / "step_000004" / "optimizer.bin", 100)
    (broken / "model.safetensors").unlink()
    assert main([*TRAIN, f"train.out_dir={broken}", "train.max_steps=4", "train.ckpt_every=2", "--resume"]) == 0
    assert "step_000004 cannot be loaded" in caplog.text and "resumed from step_000002" in caplog.text
    want, got = load_weights(run / "model.safetensors"), load_weights(broken / "model.safetensors")
    assert all(torch.equal(want[k], got[k]) for k in want) and exported_step(broken / "model.safetensors") == 4


def test_train_lr_given_on_resume_is_the_one_used(run: Path, tmp_path: Path) -> None:
    """A checkpoint restores its scheduler's base rate; the train.lr given with --resume replaces it (the fix
    a divergence message suggests would otherwise do nothing)."""
    out = _copy(run, tmp_path / "lower")
    assert main([*TRAIN, f"train.out_dir={out}", "train.max_steps=6", "train.ckpt_every=2", "train.log_every=1",
                 "train.lr=1e-5", "train.schedule=constant", "train.warmup_steps=0", "--resume"]) == 0
    steps, lrs = read_series(out / "metrics.csv")["lr"]["train"]
    assert [s for s in steps if s > 4] == [5, 6] and lrs[-1] == pytest.approx(1e-5)


def test_divergence_names_a_good_checkpoint_that_reconstructs_finite_audio(run: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture) -> None:
    """train.lr=1e9 from a sane run's step 4: the run stops with one line naming step_000004 (not the blown-up
    step_000006 written after it), and that checkpoint loads and reconstructs finite audio."""
    out = _copy(run, tmp_path / "div")
    code = main([*TRAIN, f"train.out_dir={out}", "train.max_steps=40", "train.ckpt_every=2", "train.lr=1e9",
                 "train.schedule=constant", "--resume"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("audiolvm train: error: training diverged")
    named = out / "checkpoints" / "step_000004"
    assert f"the last good checkpoint is {named}" in last
    model, _ = load_model(named)
    with torch.no_grad():
        y = model.reconstruct(torch.from_numpy(noise(4000, seed=5)).view(1, 1, -1), level=0)
    assert torch.isfinite(y).all() and y.abs().max() > 0


def test_automatic_rollback_finishes_a_run_that_diverges(run: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """train.rollbacks=1: the same divergence rolls back to step_000004 with the learning rate scaled by
    rollback_lr_scale (1e9 x 1e-12 = 1e-3), and the run finishes with finite weights."""
    out = _copy(run, tmp_path / "roll")
    assert main([*TRAIN, f"train.out_dir={out}", "train.max_steps=12", "train.ckpt_every=2", "train.lr=1e9",
                 "train.schedule=constant", "train.rollbacks=1", "train.rollback_lr_scale=1e-12", "--resume"]) == 0
    assert "rollback 1 of 1 to" in caplog.text and "step_000004" in caplog.text
    weights = load_weights(out / "model.safetensors")
    assert exported_step(out / "model.safetensors") == 12 and all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_permissions_a_plain_write_gets(tmp_path: Path, umask: int) -> None:
    """A report or config written atomically is as readable as one written with open() (mkstemp's files are 0600)."""
    old = os.umask(umask)
    try:
        (tmp_path / "plain.json").write_text("{}")
        written = atomic_write_json(tmp_path / "atomic.json", {})
        atomic_write_text(written, "replaced")  # replacing a file gives the same mode again
    finally:
        os.umask(old)
    assert (written.stat().st_mode & 0o777) == ((tmp_path / "plain.json").stat().st_mode & 0o777) == 0o666 & ~umask
    assert written.read_text() == "replaced" and not list(tmp_path.glob(".*.tmp"))
