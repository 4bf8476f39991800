"""``train.threads``: the load meter, the rule, and how the trainer applies, records and restores the count."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from audiolvm.config import ConfigError, TrainConfig, load_config
from audiolvm.core import cpu
from audiolvm.core.cpu import LoadMeter
from audiolvm.engine import Trainer
from audiolvm.engine.threads import parse_threads, threads_for
from tests.helpers import SineDataset, tiny_objective, tiny_vqvae


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="the load meter reads /proc/stat (Linux)")
def test_the_meter_counts_other_processes_and_not_our_own_work() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # the interpreter has started
        meter = LoadMeter.start()
        time.sleep(0.8)
        other = meter.other_load()
    finally:
        busy.kill()
        busy.wait()
    assert other is not None and other > 0.6, other  # one busy process is one core
    meter = LoadMeter.start()
    end = time.perf_counter() + 0.8
    while time.perf_counter() < end:  # our own busy core: not "other" load
        pass
    mine = meter.other_load()
    assert mine is not None and mine < 0.5, mine


def test_the_rule_uses_the_free_cores_within_torchs_count() -> None:
    assert threads_for(0.0, cores=2, most=2) == 2
    assert threads_for(0.9, cores=2, most=2) == 1
    assert threads_for(3.0, cores=2, most=2) == 1  # never fewer than one
    assert threads_for(0.0, cores=16, most=4) == 4  # never more than torch had
    assert threads_for(5.2, cores=16, most=16) == 11
    assert parse_threads(" Auto") == "auto" and parse_threads("3") == 3
    with pytest.raises(ValueError, match="train.threads"):
        parse_threads("0")
    with pytest.raises(ConfigError, match="train.threads='fast'"):
        load_config(None, ["train.threads=fast"])


@pytest.fixture
def two_threads_two_cores(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A 2-core machine whose other load the test sets (``load["now"]``); torch at 2 threads, no
    OMP_NUM_THREADS (the test suite sets it, which turns the policy off)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "usable_cpus", lambda: [0, 1])
    load = {"now": 0.0}
    monkeypatch.setattr(LoadMeter, "other_load", lambda self: load["now"])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield load
    torch.set_num_threads(before)


def _trainer(out: Path, seen: list[int], **overrides) -> Trainer:
    cfg = TrainConfig(out_dir=str(out), max_steps=6, lr=3e-3, warmup_steps=0, log_every=2, valid_every=100,
                      ckpt_every=3, tensorboard=False, progress=False)
    cfg = dataclasses.replace(cfg, **overrides)
    objective = tiny_objective()

    def step(model, batch):  # noqa: ANN001, ANN202
        seen.append(torch.get_num_threads())
        return objective(model, batch)

    torch.manual_seed(0)
    return Trainer(tiny_vqvae(), step, SineDataset(n=12, seed=1), cfg, batch_size=4)


def test_auto_takes_the_free_cores_at_the_start_and_keeps_them_on_resume(tmp_path: Path,
                                                                        two_threads_two_cores: dict) -> None:
    load, seen = two_threads_two_cores, []
    load["now"] = 1.0  # another process is busy when the run starts
    first = _trainer(tmp_path / "run", seen)
    first.fit(stop_after=3)
    assert seen == [1, 1, 1] and first.state.threads == 1
    assert torch.get_num_threads() == 2  # put back after the run
    load["now"] = 0.0  # idle now, but the resumed run keeps the count it started with (exact resume)
    seen.clear()
    resumed = _trainer(tmp_path / "run", seen)
    resumed.fit(resume=True)
    assert seen == [1, 1, 1] and resumed.state.step == 6
    seen.clear()
    _trainer(tmp_path / "fresh", seen).fit()  # a new run on the idle machine takes both cores
    assert seen == [2] * 6


def test_follow_re_decides_at_every_log_point(tmp_path: Path, two_threads_two_cores: dict) -> None:
    load, seen = two_threads_two_cores, []
    load["now"] = 1.0
    trainer = _trainer(tmp_path / "run", seen, threads="follow")
    original = trainer.threads.at_sync_point

    def then_idle() -> int:  # the other process ends at the first log point
        load["now"] = 0.0
        return original()

    trainer.threads.at_sync_point = then_idle  # type: ignore[method-assign]
    trainer.fit()
    assert seen == [1, 1, 2, 2, 2, 2]


def test_a_pinned_count_or_omp_num_threads_wins(tmp_path: Path, two_threads_two_cores: dict,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    load, seen = two_threads_two_cores, []
    _trainer(tmp_path / "pinned", seen, threads="1").fit()
    assert seen == [1] * 6
    load["now"] = 1.0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a launcher or the user split the cores on purpose
    seen.clear()
    _trainer(tmp_path / "omp", seen).fit()
    assert seen == [2] * 6
