"""Trainer properties: exact resume, non-finite guard, atomic rotation, logs and curves."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import pytest
import torch

from audiolvm.config import TrainConfig
from audiolvm.engine import Trainer, TrainingDiverged, checkpoint, lr_multiplier
from audiolvm.engine.checkpoint import exported_step, list_checkpoints, load_weights
from tests.helpers import SineDataset, tiny_objective, tiny_vqvae


def make_trainer(out: Path, seed_model: int = 0, step_fn=None, **overrides) -> Trainer:
    cfg = TrainConfig(out_dir=str(out), max_steps=6, lr=3e-3, warmup_steps=2, log_every=1, valid_every=3,
                      ckpt_every=3, keep_last=2, seed=0, tensorboard=False, progress=False)
    cfg = dataclasses.replace(cfg, **overrides)
    torch.manual_seed(seed_model)
    model = tiny_vqvae(dead_threshold=1.5)  # restarts happen: resume must restore the RNG too
    return Trainer(model, step_fn or tiny_objective(), SineDataset(n=12, seed=1), cfg, batch_size=4,
                   valid_data=SineDataset(n=4, seed=2), run_config={"name": "test"})


def state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model().state_dict().items()}


def test_resume_reproduces_uninterrupted_training(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a")
    straight.fit()
    first = make_trainer(tmp_path / "b")
    first.fit(stop_after=3)
    assert first.state.step == 3
    resumed = make_trainer(tmp_path / "b", seed_model=123)  # different init: the checkpoint must win
    resumed.fit(resume=True)
    assert resumed.state.step == straight.state.step == 6
    a, b = state(straight), state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    # sanity: training changed the weights, so equality above is not trivial
    assert not torch.equal(a["encoder.net.0.weight"], state(make_trainer(tmp_path / "c"))["encoder.net.0.weight"])


def test_checkpoints_rotate_and_export_safetensors(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, max_steps=9, ckpt_every=2, keep_last=2)
    trainer.fit()
    names = [p.name for p in list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["step_000008", "step_000009"]
    assert not list((tmp_path / "checkpoints").glob(".*tmp*")), "temporary folders left behind"
    exported = load_weights(tmp_path / "model.safetensors")
    for k, v in state(trainer).items():
        assert torch.equal(exported[k], v)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "curves.png").stat().st_size > 1000


def test_resume_of_a_finished_run_replaces_a_stale_export(tmp_path: Path) -> None:
    """A kill between the final checkpoint and the export left older weights behind (issue 13): --resume of
    the finished run trains nothing, but must export the checkpoint's weights again."""
    trainer = make_trainer(tmp_path)
    trainer.fit()
    final = state(trainer)
    assert exported_step(tmp_path / "model.safetensors") == 6
    shutil.copy(tmp_path / "checkpoints" / "step_000003" / "model.safetensors", tmp_path / "model.safetensors")
    assert exported_step(tmp_path / "model.safetensors") is None  # accelerate's copy names no step
    stale = load_weights(tmp_path / "model.safetensors")
    assert any(not torch.equal(stale[k], final[k]) for k in final)
    resumed = make_trainer(tmp_path, seed_model=5)
    resumed.fit(resume=True)
    assert resumed.state.step == 6 and exported_step(tmp_path / "model.safetensors") == 6
    exported = load_weights(tmp_path / "model.safetensors")
    assert all(torch.equal(exported[k], final[k]) for k in final)


def test_a_kill_inside_the_checkpoint_window_resumes_to_the_same_weights(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The export is written before the checkpoint is published; a kill between the two (simulated at the
    final step) leaves no checkpoint for that step, and --resume retrains it to the same weights."""
    straight = make_trainer(tmp_path / "a")
    straight.fit()
    publish = checkpoint.publish_dir

    def killed_at_the_end(tmp: Path, final: Path) -> None:
        if final.name == "step_000006":
            raise KeyboardInterrupt("killed")
        publish(tmp, final)

    monkeypatch.setattr(checkpoint, "publish_dir", killed_at_the_end)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path / "b").fit()
    monkeypatch.setattr(checkpoint, "publish_dir", publish)
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_000003"]
    assert exported_step(tmp_path / "b" / "model.safetensors") == 6  # the export was already there
    resumed = make_trainer(tmp_path / "b", seed_model=9)
    resumed.fit(resume=True)
    a, b = state(straight), state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    exported = load_weights(tmp_path / "b" / "model.safetensors")
    assert exported_step(tmp_path / "b" / "model.safetensors") == 6 and all(torch.equal(exported[k], a[k]) for k in a)


def test_metrics_csv_logs_every_term(tmp_path: Path) -> None:
    make_trainer(tmp_path).fit()
    text = (tmp_path / "metrics.csv").read_text()
    for name in ("loss", "waveform", "stft/sc", "stft/logmag", "vq/commitment", "vq/perplexity", "lr"):
        assert f",train,{name}," in text, name
    assert ",valid,loss," in text


def counting_objective(bad_calls: set[int]):
    objective, calls = tiny_objective(), {"n": 0}

    def step_fn(model, batch):
        out = objective(model, batch)
        calls["n"] += 1
        if model.training and calls["n"] in bad_calls:
            out["loss"] = out["loss"] * float("nan")
        return out

    return step_fn


def test_single_nonfinite_loss_is_skipped(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, step_fn=counting_objective({2}), max_steps=4, valid_every=100)
    result = trainer.fit()
    assert result.state.step == 4 and result.state.skipped_steps == 1
    assert all(torch.isfinite(v).all() for v in state(trainer).values())


def test_repeated_nonfinite_losses_stop_and_keep_last_checkpoint(tmp_path: Path) -> None:
    bad = set(range(5, 100))  # train calls 1-4 fine (ckpt at step 3), then NaN forever
    trainer = make_trainer(tmp_path, step_fn=counting_objective(bad), max_steps=50, ckpt_every=3,
                           valid_every=100, max_nonfinite=3)
    ckpt = tmp_path / "checkpoints" / "step_000003"
    with pytest.raises(TrainingDiverged, match="step_000003"):
        trainer.fit()
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_000003"]
    saved = load_weights(ckpt / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in saved.values())


def test_the_named_checkpoint_is_the_last_good_one_and_survives_rotation(tmp_path: Path) -> None:
    """A checkpoint after which the loss explodes is not good; the diverged run names the newest good one,
    which rotation kept although it is older than the last keep_last, and whose weights decode finite audio."""
    objective, calls = tiny_objective(), {"n": 0}

    def step_fn(model, batch):  # noqa: ANN001, ANN202 - steps 1-6 fine, 7 explodes (finite), then NaN
        out = objective(model, batch)
        calls["n"] += model.training
        if model.training and calls["n"] == 7:
            out["loss"] = out["loss"] * 1e6
        elif model.training and calls["n"] > 7:
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer = make_trainer(tmp_path, step_fn=step_fn, max_steps=50, ckpt_every=1, keep_last=2, valid_every=100,
                           max_nonfinite=3)
    with pytest.raises(TrainingDiverged, match="step_000005") as err:
        trainer.fit()
    assert "train.grad_clip is already 1" in str(err.value) and "\n" not in str(err.value)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_000005", "step_000006",
                                                                          "step_000007"]
    model = tiny_vqvae(dead_threshold=1.5)
    model.load_state_dict(load_weights(tmp_path / "checkpoints" / "step_000005" / "model.safetensors"))
    with torch.no_grad():
        recon = model.eval()(SineDataset(n=2, seed=3)[0]["audio"][None]).recon
    assert torch.isfinite(recon).all() and recon.abs().max() > 0


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    values = [lr_multiplier(s, cfg) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert values[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_gradient_accumulation_matches_the_large_batch(tmp_path: Path) -> None:
    """2 micro-batches of 2 give the same update as one batch of 4 (identity bottleneck: no EMA)."""
    from audiolvm.bottleneck import IdentityBottleneck
    from audiolvm.models.audio_vqvae import audio_autoencoder

    objective = tiny_objective({"waveform": 1.0, "stft/sc": 1.0, "stft/logmag": 1.0})
    results = []
    for name, batch, accum in (("init", 4, 1), ("big", 4, 1), ("accum", 2, 2)):
        torch.manual_seed(0)
        model = audio_autoencoder(IdentityBottleneck(), latent_dim=8, width=16, strides=[2, 2], depth=1)
        steps = 0 if name == "init" else 2
        cfg = TrainConfig(out_dir=str(tmp_path / name), max_steps=steps, optimizer="sgd", lr=1e-2, warmup_steps=0,
                          grad_clip=0.0,
                          grad_accum=accum, tensorboard=False, progress=False, ckpt_every=100)
        trainer = Trainer(model, objective, SineDataset(n=8, seed=4), cfg, batch_size=batch)
        trainer.fit()
        results.append(state(trainer))
    # SGD is linear in the gradient, so only float noise separates the two; summing instead of
    # averaging, or a step per micro-batch, would change the update by O(1) of itself.
    init, big, accum = (torch.cat([v.flatten() for v in r.values()]) for r in results)
    update = (big - init).norm()
    assert update > 1e-3
    assert (accum - big).norm() / update < 1e-3


def test_bf16_mixed_precision_trains_with_float32_codebook(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, mixed_precision="bf16", max_steps=3, valid_every=100)
    result = trainer.fit()
    assert result.state.step == 3 and result.state.skipped_steps == 0
    vq = trainer.unwrapped_model().bottleneck
    assert vq.codebook.dtype == torch.float32 and torch.isfinite(vq.codebook).all()


def test_a_full_disk_while_plotting_keeps_the_previous_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """curves.png used to be truncated to 0 bytes when the disk filled during savefig; now the PNG is
    rendered in memory and moved into place, so the old figure survives and the error is an OSError."""
    import errno

    from matplotlib.figure import Figure

    from audiolvm.engine.logs import plot_curves

    make_trainer(tmp_path).fit()
    png = tmp_path / "curves.png"
    before = png.read_bytes()

    def disk_full(self, fname, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        fname.write(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError, match="No space left"):
        plot_curves(tmp_path / "metrics.csv", png)
    assert png.read_bytes() == before and len(before) > 1000
    assert not list(tmp_path.glob(".curves.png.*"))


def test_one_run_per_out_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A live run's lock refuses a second run into the folder; a dead run's lock is taken over; a lock from
    another host is refused with the way to clear it; a finished run leaves no lock behind."""
    import json
    import socket
    import subprocess
    import sys

    from audiolvm.engine.lock import LOCK_NAME, RunLocked

    lock = tmp_path / LOCK_NAME
    tmp_path.mkdir(exist_ok=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(RunLocked, match=f"another run \\(PID {live.pid}\\) is writing"):
            make_trainer(tmp_path).fit()
        assert not list_checkpoints(tmp_path / "checkpoints")  # refused before touching anything
    finally:
        live.kill()
        live.wait()
    make_trainer(tmp_path).fit()  # the holder is gone now: a stale lock
    assert "taking over a stale lock" in caplog.text and not lock.exists()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunLocked, match=f"host elsewhere; if that run is over, delete {lock}"):
        make_trainer(tmp_path).fit(resume=True)


class _Vectors(torch.utils.data.Dataset):
    """64 fixed random vectors: one epoch covers every run of these tests."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": torch.randn(8, generator=torch.Generator().manual_seed(i))}


def _linear_step(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
    y = model(batch["x"])
    return {"loss": (y**2).mean(), "peak": y.abs().max()}


@pytest.mark.parametrize("kind", ["linear", "vqvae"])
def test_no_host_sync_between_sync_points(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics and the non-finite flag stay on the device between log points, and so do the VQ's EMA update,
    its non-finite guard and its dead-code restarts: the tensor->Python conversions inside fit do not grow with
    the number of steps (a per-step float() or bool() would add at least one per step)."""
    conversions = {"n": 0}
    for name in ("item", "tolist", "__float__", "__bool__", "__int__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            conversions["n"] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    counts = {}
    for steps in (4, 12):
        torch.manual_seed(0)
        cfg = TrainConfig(out_dir=str(tmp_path / str(steps)), max_steps=steps, lr=1e-3, warmup_steps=0,
                          log_every=steps, valid_every=steps, ckpt_every=steps, tensorboard=False, progress=False)
        if kind == "linear":
            trainer = Trainer(torch.nn.Linear(8, 8), _linear_step, _Vectors(), cfg, batch_size=4)
        else:  # restarts happen at this threshold
            trainer = Trainer(tiny_vqvae(dead_threshold=1.5), tiny_objective(), SineDataset(n=64, seed=1), cfg,
                              batch_size=4)
        conversions["n"] = 0
        trainer.fit()
        counts[steps] = conversions["n"]
    assert counts[12] == counts[4] <= 8, counts


def test_a_skipped_step_leaves_weights_and_optimizer_state_untouched(tmp_path: Path) -> None:
    """The update of a non-finite step is skipped on the device (the fused optimizer's found_inf): the weights
    and the optimizer's moments and step count after steps [ok, NaN] equal those after [ok] alone."""

    def nan_at_step_2(model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        out = _linear_step(model, batch)
        nan_at_step_2.calls += model.training
        return out | {"loss": out["loss"] * float("nan")} if nan_at_step_2.calls == 2 else out

    results = []
    for steps, fn in ((1, _linear_step), (2, nan_at_step_2)):
        nan_at_step_2.calls = 0
        torch.manual_seed(0)
        cfg = TrainConfig(out_dir=str(tmp_path / str(steps)), max_steps=steps, lr=1e-2, warmup_steps=0,
                          log_every=1, ckpt_every=100, tensorboard=False, progress=False)
        trainer = Trainer(torch.nn.Linear(8, 8), fn, _Vectors(), cfg, batch_size=4)
        result = trainer.fit()
        results.append((trainer, result.state))
    (a, _), (b, state_b) = results
    assert state_b.step == 2 and state_b.skipped_steps == 1
    for p, q in zip(a.unwrapped_model().parameters(), b.unwrapped_model().parameters(), strict=True):
        assert torch.equal(p, q)
        sa, sb = a.optimizer.state[p], b.optimizer.state[q]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), sorted(sa)


class _SlowVectors(_Vectors):
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import time

        time.sleep(0.02)
        return super().__getitem__(i)


def test_throughput_and_loader_wait_are_logged(tmp_path: Path) -> None:
    """Each log point records steps/s and the share of wall time spent waiting for batches: a loader that
    sleeps 80 ms per batch in front of a microsecond model shows up as mostly waiting."""
    from audiolvm.engine.logs import read_series

    cfg = TrainConfig(out_dir=str(tmp_path), max_steps=6, lr=1e-3, warmup_steps=0, log_every=3, ckpt_every=100,
                      tensorboard=False, progress=False)
    Trainer(torch.nn.Linear(8, 8), _linear_step, _SlowVectors(), cfg, batch_size=4).fit()
    series = read_series(tmp_path / "metrics.csv")
    steps, wait = series["time/data_wait"]["train"]
    assert steps == [3, 6] and all(0.5 < w <= 1.0 for w in wait), wait
    assert all(0 < s < 1 / 0.08 for s in series["time/steps_per_s"]["train"][1])


class _Digits(torch.utils.data.Dataset):
    """32 fixed binary 8x8 images."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"image": (torch.rand(1, 8, 8, generator=g) > 0.5).float()}


def test_a_compiled_step_trains_like_the_eager_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train.compile runs the step function under torch.compile (inductor): from the same weights and batches, the
    weights after a few steps with a KL warm-up schedule (read from the model's step counter as a tensor) match the
    eager run's to float rounding. Inductor draws its own random numbers unless told to use torch's (the VAE's
    noise), so the test asks for torch's."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    from audiolvm.bottleneck import GaussianBottleneck
    from audiolvm.losses import BernoulliLikelihood, LinearSchedule
    from audiolvm.models.vae import VAE
    from audiolvm.models.vae_objective import VAEObjective
    from audiolvm.nn.mlp import MLPDecoder, MLPEncoder

    finals = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = VAE(MLPEncoder((1, 8, 8), 8, hidden=(32,)), GaussianBottleneck(),
                    MLPDecoder(4, (1, 8, 8), hidden=(32,)), BernoulliLikelihood(1), latent_shape=(4,))
        cfg = TrainConfig(out_dir=str(tmp_path / str(compiled)), max_steps=5, lr=1e-2, warmup_steps=0, log_every=5,
                          valid_every=5, ckpt_every=5, compile=compiled, tensorboard=False, progress=False)
        objective = VAEObjective(warmup=LinearSchedule(steps=4))
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        result = Trainer(model, objective, _Digits(), cfg, batch_size=8).fit()
        assert result.state.step == 5 and result.state.skipped_steps == 0
        finals.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        assert int(model.train_steps) == 5
    assert not torch.allclose(finals[0]["encoder.net.0.weight"], initial["encoder.net.0.weight"])  # it trained
    for k in finals[0]:
        torch.testing.assert_close(finals[1][k], finals[0][k], rtol=1e-4, atol=1e-5, msg=k)


def test_time_limit_stops_at_a_log_point_with_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a", log_every=2)
    straight.fit()
    limited = make_trainer(tmp_path / "b", log_every=2)
    result = limited.fit(time_limit=1e-9)  # past the limit at once: the first log point stops it
    assert result.state.step == 2 and result.last_checkpoint is not None
    assert result.last_checkpoint.name == "step_000002"
    resumed = make_trainer(tmp_path / "b", log_every=2, seed_model=3)
    resumed.fit(resume=True)
    a, b = state(straight), state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
