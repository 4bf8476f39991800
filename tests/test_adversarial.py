"""Adversarial training on the model-agnostic engine: phases with their own optimizers, exact resume with two
optimizers, warm start, the generator-only export, the weight average, and the EnCodec balancer."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from audiolvm.builders import build_model, build_objective
from audiolvm.config import OptimGroupConfig, TrainConfig, config_to_dict, load_config
from audiolvm.engine import Trainer
from audiolvm.engine.checkpoint import exported_step, load_weights
from audiolvm.losses.balancer import Balancer
from audiolvm.models.adversarial import AdversarialObjective
from tests.helpers import SineDataset, tiny_adversarial, tiny_objective, tiny_vqvae

ROOT = Path(__file__).resolve().parents[1]


def make(out: Path, objective=None, seed_model: int = 0, width: int = 16, **overrides) -> Trainer:
    """A tiny adversarial run; ``objective`` is a factory, called after seeding (the discriminators' initial
    weights depend on the seed alone)."""
    cfg = TrainConfig(out_dir=str(out), max_steps=6, lr=3e-3, warmup_steps=2, log_every=1, valid_every=3,
                      ckpt_every=3, keep_last=3, seed=0, tensorboard=False, progress=False,
                      groups={"disc": OptimGroupConfig(lr=1e-3, betas=[0.5, 0.9])})
    cfg = dataclasses.replace(cfg, **overrides)
    torch.manual_seed(seed_model)
    model = tiny_vqvae(width=width, dead_threshold=1.5)
    objective = objective() if objective is not None else tiny_adversarial(start_step=1)
    return Trainer(model, objective, SineDataset(n=12, seed=1), cfg, batch_size=4,
                   valid_data=SineDataset(n=4, seed=2), run_config={"name": "adv"})


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_each_phase_changes_only_its_own_module(tmp_path: Path) -> None:
    """A discriminator step changes no generator parameter and a generator step no discriminator parameter, while
    each changes its own."""
    trainer = make(tmp_path)
    model, disc = trainer.unwrapped_model(), trainer.trained_modules().aux["disc"]
    seen: list[tuple[str, bool, bool]] = []
    for group in trainer.groups:
        inner_step = group.optimizer.step

        def step(*a, _inner=inner_step, _name=group.name, **kw):  # noqa: ANN002, ANN003, ANN202
            before_m, before_d = params(model), params(disc)
            result = _inner(*a, **kw)
            after_m, after_d = params(model), params(disc)
            seen.append((_name, any(not torch.equal(before_m[k], after_m[k]) for k in after_m),
                         any(not torch.equal(before_d[k], after_d[k]) for k in after_d)))
            return result

        group.optimizer.step = step
    trainer.fit(stop_after=3)
    assert [name for name, _, _ in seen] == ["disc", "model"] * 3  # update order: discriminators first
    assert all(d_changed and not m_changed for name, m_changed, d_changed in seen if name == "disc")
    assert all(m_changed and not d_changed for name, m_changed, d_changed in seen if name == "model")


def test_update_order_and_group_settings_come_from_config(tmp_path: Path) -> None:
    trainer = make(tmp_path, update_order=["model", "disc"])
    assert [g.name for g in trainer.groups] == ["model", "disc"]
    disc = next(g for g in trainer.groups if g.name == "disc")
    assert disc.cfg.lr == 1e-3 and disc.inner.defaults["betas"] == (0.5, 0.9)
    assert trainer.groups[0].inner.defaults["betas"] == (0.9, 0.99)
    with pytest.raises(ValueError, match="update_order"):
        make(tmp_path / "b", update_order=["model"])
    with pytest.raises(ValueError, match="train.groups names \\['dsic'\\]"):
        make(tmp_path / "c", groups={"dsic": OptimGroupConfig(lr=1.0)})


def test_exact_resume_with_two_optimizers_after_a_kill_between_the_phases(tmp_path: Path) -> None:
    """A run killed after step 4's discriminator update, before its generator update, resumes from the step-3
    checkpoint to the same model, discriminators, balancer state and optimizer moments as an uninterrupted run."""
    straight = make(tmp_path / "a", lambda: tiny_adversarial(start_step=1, balancer=True))
    straight.fit()

    killed = make(tmp_path / "b", lambda: tiny_adversarial(start_step=1, balancer=True))
    model_group = next(g for g in killed.groups if g.name == "model")
    inner_step, calls = model_group.optimizer.step, []

    def dying_step(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed between the discriminator and generator updates of step 4")
        return inner_step(*a, **kw)

    model_group.optimizer.step = dying_step
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert killed.state.step == 3

    resumed = make(tmp_path / "b", lambda: tiny_adversarial(start_step=1, balancer=True), seed_model=7)
    resumed.fit(resume=True)
    a, b = snapshot(straight.trained_modules()), snapshot(resumed.trained_modules())
    assert a.keys() == b.keys() and any(k.startswith("aux.disc.balancer") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for ga, gb in zip(straight.groups, resumed.groups, strict=True):
        for p, q in zip(ga.inner.param_groups[0]["params"], gb.inner.param_groups[0]["params"], strict=True):
            assert torch.equal(ga.inner.state[p]["exp_avg_sq"], gb.inner.state[q]["exp_avg_sq"])
    assert int(a["aux.disc.steps"]) == 6


def test_export_is_the_generator_alone_and_the_discriminators_go_beside_it(tmp_path: Path) -> None:
    trainer = make(tmp_path)
    trainer.fit()
    exported = load_weights(tmp_path / "model.safetensors")
    assert exported.keys() == trainer.unwrapped_model().state_dict().keys()  # loadable by load_model as before
    disc = load_weights(tmp_path / "disc.safetensors")
    live = trainer.trained_modules().aux["disc"].state_dict()
    assert disc.keys() == live.keys() and all(torch.equal(disc[k], live[k]) for k in live)
    assert exported_step(tmp_path / "disc.safetensors") == exported_step(tmp_path / "model.safetensors") == 6


def test_adversarial_terms_wait_for_start_step_and_logs_show_both_players(tmp_path: Path) -> None:
    trainer = make(tmp_path, lambda: tiny_adversarial(start_step=3))
    trainer.fit()
    train: dict[int, dict[str, float]] = {}
    for row in csv.DictReader((tmp_path / "metrics.csv").open()):
        if row["split"] == "train":
            train.setdefault(int(row["step"]), {})[row["name"]] = float(row["value"])
    gen = [train[step]["adv/gen"] for step in sorted(train)]
    assert gen[:3] == [0.0, 0.0, 0.0] and all(g > 0 for g in gen[3:])  # steps 4..6: on
    assert all({"loss/disc", "disc/real", "disc/fake", "lr/disc", "grad_norm/disc"} <= set(r) for r in train.values())
    assert "disc/fake" in trainer.validate() and "loss/disc" in trainer.validate()


def test_warm_start_loads_the_generator_bitwise(tmp_path: Path) -> None:
    """A non-adversarial run warm-starts an adversarial one: the generator's weights and its first forward are the
    source run's; the discriminators are fresh."""
    source = make(tmp_path / "src", tiny_objective)
    source.fit()
    src = source.unwrapped_model().eval()
    warm = make(tmp_path / "adv", seed_model=9, init_from=str(tmp_path / "src"), max_steps=0)
    warm.fit()
    model = warm.unwrapped_model().eval()
    exported = load_weights(tmp_path / "src" / "model.safetensors")
    assert all(torch.equal(v, exported[k]) for k, v in model.state_dict().items())
    x = SineDataset(n=2, seed=5)[0]["audio"][None]
    with torch.no_grad():
        assert torch.equal(model(x).recon, src(x).recon)
    assert not (tmp_path / "src" / "disc.safetensors").exists()

    with pytest.raises(ValueError, match=r"model.safetensors: does not fit the model built now: .*of another shape"):
        make(tmp_path / "wide", width=24, init_from=str(tmp_path / "src"), max_steps=1).fit()
    with pytest.raises(ValueError, match="not found"):
        make(tmp_path / "none", init_from=str(tmp_path / "missing"), max_steps=1).fit()


def test_warm_start_from_an_adversarial_run_keeps_its_discriminators(tmp_path: Path) -> None:
    first = make(tmp_path / "a")
    first.fit()
    again = make(tmp_path / "b", init_from=str(tmp_path / "a"), max_steps=0)
    again.fit()
    d_first, d_again = snapshot(first.trained_modules().aux["disc"]), snapshot(again.trained_modules().aux["disc"])
    assert all(torch.equal(d_first[k], d_again[k]) for k in d_first)


def test_weight_average_is_exported_and_resumes_exactly(tmp_path: Path) -> None:
    straight = make(tmp_path / "a", tiny_objective, ema=0.5)
    straight.fit()
    live, avg = snapshot(straight.unwrapped_model()), load_weights(tmp_path / "a" / "model.safetensors")
    assert any(not torch.equal(live[k], avg[k]) for k in live if live[k].is_floating_point())
    assert all(torch.equal(straight.ema.shadow[k], avg[k]) for k in avg)
    first = make(tmp_path / "b", tiny_objective, ema=0.5)
    first.fit(stop_after=3)
    resumed = make(tmp_path / "b", tiny_objective, ema=0.5, seed_model=4)
    resumed.fit(resume=True)
    again = load_weights(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(avg[k], again[k]) for k in avg)


def test_balancer_gives_each_term_its_share_of_the_gradient() -> None:
    """Two terms on disjoint halves of the output (so each one's part of the balanced gradient can be read off),
    with scales 1000x apart: their contributions' norms are ``total * w_k / sum(w)`` within 10% once the averages
    have settled, while the raw gradients differ 1000x."""
    torch.manual_seed(0)
    balancer = Balancer([("l0", "a"), ("l0", "b")], total=2.0, decay=0.9)
    weights = {"a": 1.0, "b": 3.0}
    shares = []
    for _ in range(60):
        y = torch.randn(4, 1, 64, requires_grad=True)
        jitter = 1 + 0.05 * torch.randn(())
        terms = {"a": 1000 * jitter * y[..., :32].square().sum(), "b": (y[..., 32:] - 1).abs().mean()}
        (grad,) = torch.autograd.grad(balancer.balance(y, terms, weights, "l0"), y)
        shares.append([grad[..., :32].flatten(1).norm(dim=1).mean(), grad[..., 32:].flatten(1).norm(dim=1).mean()])
    a, b = torch.tensor(shares[-10:]).mean(0)
    assert a == pytest.approx(2.0 * 1 / 4, rel=0.1) and b == pytest.approx(2.0 * 3 / 4, rel=0.1)
    with torch.no_grad():  # validation: the plain weighted sum
        y = torch.ones(1, 1, 4)
        assert balancer.balance(y, {"a": y.sum(), "b": y.mean()}, weights) == pytest.approx(4 + 3)


@pytest.mark.parametrize("name, rate", [("speech_16k", 16000), ("speech_22k", 22050), ("speech_24k", 24000),
                                        ("speech_44k", 44100)])
def test_sample_rate_configs_build_and_train_a_step(tmp_path: Path, name: str, rate: int) -> None:
    """Each shipped rate variant (strides and STFT sizes scaled) builds its model and discriminators and takes one
    adversarial step on a tiny input (widths shrunk to keep the test fast; the shapes are the config's)."""
    cfg = load_config(ROOT / "configs" / "gan" / f"{name}.yaml", [
        "model.width=8", "model.depth=1", "model.vq.num_codes=[32]", "model.vq.dim=8", "adv.channels=4",
        "adv.periods=[2,3]", f"train.out_dir={tmp_path}", "train.max_steps=1", "train.warmup_steps=0",
        "train.tensorboard=false", "train.progress=false"])
    assert cfg.data.sample_rate == rate and abs(rate / cfg.model.hop - 250) < 1  # ~250 codes/s at every rate
    model, objective = build_model(cfg.model, rate), build_objective(cfg)
    assert isinstance(objective, AdversarialObjective)
    length = cfg.model.hop * (rate // cfg.model.hop // 4)  # ~0.25 s
    trainer = Trainer(model, objective, SineDataset(n=2, length=length, rate=rate), cfg.train, batch_size=2,
                      run_config=config_to_dict(cfg))
    before = snapshot(trainer.trained_modules())
    result = trainer.fit()
    after = snapshot(trainer.trained_modules())
    assert result.state.step == 1 and math.isfinite(result.last_train["loss"])
    assert math.isfinite(result.last_train["loss/disc"]) and result.last_train["mel"] > 0
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    for part in ("model.levels.0.encoder.", "model.levels.0.decoder.", "aux.disc.discriminators.mpd.",
                 "aux.disc.discriminators.mbstft."):
        assert any(k.startswith(part) for k in changed), f"{part} did not train"


def test_demo_gan_stage_fine_tunes_the_speech_model_and_reports(tmp_path: Path) -> None:
    """The demo's gan stage on a tiny speech model: warm start from the speech stage's run, a short adversarial
    fine-tune, before / after scores, the discriminators' verdict and the spectrogram figures."""
    from audiolvm_pipelines import demo_gan, train

    small = ["model.width=8", "model.depth=1", "model.vq.num_codes=[32]", "model.vq.dim=8", "data.valid_fraction=0.03",
             "data.batch_size=2", "train.progress=false", "train.tensorboard=false"]
    train.run(argparse.Namespace(config=str(ROOT / "configs" / "demo" / "speech_vqvae.yaml"), resume=False,
                                 stop_after=None, time_limit=None,
                                 overrides=[*small, f"data.root={ROOT / 'data' / 'speech'}", "train.max_steps=2",
                                            f"train.out_dir={tmp_path / 'speech_vqvae'}"]))
    stage = demo_gan.run_gan(tmp_path, steps=3, examples=1, overrides=(
        *small, f"data.root={ROOT / 'data' / 'speech'}", "adv.channels=4", "adv.start_step=1", "adv.periods=[2,3]"))
    assert set(stage["rows"]) == {"before (warm start)", "after (adversarial)"}
    before, after = stage["rows"].values()
    assert before["mel_distance"] != after["mel_distance"]  # the fine-tune changed the model
    scores = stage["discriminator_scores"]
    assert set(scores) == {"real", "level 0", "level 0 below real"} and all(math.isfinite(v) for v in scores.values())
    assert len(stage["figures"]) == 1
    assert (tmp_path / stage["figures"][0]).stat().st_size > 1000
    assert (tmp_path / "speech_vqvae_gan" / "disc.safetensors").is_file()
    report = "\n".join(demo_gan.report_lines(stage))
    assert "before (warm start)" in report and "mean discriminator logit" in report


def test_a_nonfinite_model_phase_skips_only_the_model_update_with_accumulation(tmp_path: Path) -> None:
    """Two micro-batches per step; the model phase's loss is NaN on the second micro-batch: the model's weights are
    untouched by the step (update skipped, counted), while the discriminators, whose loss was finite on both, took
    their step."""

    def poisoned():  # noqa: ANN202
        objective = tiny_adversarial(start_step=0)
        inner, calls = objective.phase, [0]

        def phase(model, modules, batch, name, carry):  # noqa: ANN001, ANN202
            out = dict(inner(model, modules, batch, name, carry))
            if name == "model" and torch.is_grad_enabled():
                calls[0] += 1
                if calls[0] == 2:  # the window's second micro-batch
                    out["loss"] = out["loss"] * float("nan")
            return out

        objective.phase = phase
        return objective

    trainer = make(tmp_path, poisoned, max_steps=1, grad_accum=2, valid_every=100)
    model0, disc0 = params(trainer.unwrapped_model()), params(trainer.trained_modules().aux["disc"])
    result = trainer.fit()
    assert result.state.step == 1 and result.state.skipped_steps == 1
    model1, disc1 = params(trainer.unwrapped_model()), params(trainer.trained_modules().aux["disc"])
    assert all(torch.equal(model0[k], model1[k]) for k in model0)
    assert any(not torch.equal(disc0[k], disc1[k]) for k in disc0)
    assert int(trainer.trained_modules().aux["disc"].steps) == 2  # counted per micro-batch


def test_bf16_autocast_reaches_every_phase(tmp_path: Path) -> None:
    """With train.mixed_precision=bf16, Accelerate's autocast wraps the one forward all phases go through: both
    phases run under autocast, their losses are finite and both modules train."""

    def recording():  # noqa: ANN202
        objective = tiny_adversarial(start_step=0)
        inner = objective.phase
        objective.seen = []

        def phase(model, modules, batch, name, carry):  # noqa: ANN001, ANN202
            objective.seen.append((name, torch.is_autocast_enabled("cpu")))
            return inner(model, modules, batch, name, carry)

        objective.phase = phase
        return objective

    trainer = make(tmp_path, recording, max_steps=2, mixed_precision="bf16", valid_every=100)
    model0, disc0 = params(trainer.unwrapped_model()), params(trainer.trained_modules().aux["disc"])
    result = trainer.fit()
    seen = trainer.phased.seen
    assert [n for n, _ in seen[:4]] == ["disc", "model", "disc", "model"] and all(on for _, on in seen)
    assert math.isfinite(result.last_train["loss"]) and math.isfinite(result.last_train["loss/disc"])
    model1, disc1 = params(trainer.unwrapped_model()), params(trainer.trained_modules().aux["disc"])
    assert any(not torch.equal(model0[k], model1[k]) for k in model0)
    assert any(not torch.equal(disc0[k], disc1[k]) for k in disc0)
    with pytest.raises(ValueError, match="fp16"):
        make(tmp_path / "fp16", mixed_precision="fp16")
