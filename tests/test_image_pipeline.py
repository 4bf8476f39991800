"""The image family's wiring: configs, builders, train-image / evaluate-image, exact resume, the demo stage."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiolvm.bottleneck import VectorQuantizerEMA
from audiolvm.builders import (
    build_image_code_data,
    build_image_datasets,
    build_image_model,
    build_image_objective,
    load_image_model,
    resolve_image_config,
)
from audiolvm.config import (
    ConfigError,
    ImageExperimentConfig,
    ImagePriorExperimentConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from audiolvm.data.codes import CodeMapDataset
from audiolvm.engine import Trainer
from audiolvm.eval.image import image_prior_metrics, uniform_nll
from audiolvm.eval.image_grids import grid_array
from audiolvm.models.image_vqvae import image_vqvae
from audiolvm.models.priors.pixelcnn import GatedPixelCNN2d
from audiolvm_pipelines import demo_images, evaluate_image, train_image, train_image_prior

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "vae_digits.yaml"
IMAGE_CONFIGS = sorted(p for p in (ROOT / "configs" / "image").glob("*.yaml") if not p.stem.startswith("pixelcnn"))


def cli(module, argv: list[str]) -> int:  # noqa: ANN001 - a pipelines module
    parser = argparse.ArgumentParser()
    module.add_parser(parser)
    return module.run(parser.parse_args(argv))


def train_rows(run: Path, name: str) -> dict[int, float]:
    with open(run / "metrics.csv") as f:
        return {int(r["step"]): float(r["value"]) for r in csv.DictReader(f) if r["split"] == "train"
                and r["name"] == name}


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("path", IMAGE_CONFIGS, ids=lambda p: p.stem)
def test_image_configs_round_trip_through_dicts(path: Path) -> None:
    cfg = load_config(path, schema=ImageExperimentConfig)
    again = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))), schema=ImageExperimentConfig)
    assert again == cfg


def test_reference_config_and_iwae_override() -> None:
    cfg = load_config(ROOT / "configs" / "image" / "vae_digits.yaml", schema=ImageExperimentConfig)
    assert (cfg.data.dataset, cfg.data.binarize, cfg.data.threshold, cfg.data.num_test) == ("digits", "static",
                                                                                            0.5, 500)
    assert (cfg.model.hidden, cfg.model.latent_dim, cfg.model.likelihood, cfg.data.batch_size) == ([200, 200], 8,
                                                                                                    "bernoulli", 100)
    assert cfg.train.lr == 1e-3 and cfg.train.weight_decay == 0 and cfg.train.schedule == "constant"
    iwae = load_config(ROOT / "configs" / "image" / "iwae_digits.yaml", ["model.samples=50"],
                       schema=ImageExperimentConfig)
    assert iwae.model.samples == 50 and iwae.model.hidden == [200, 200]  # the base's other keys are kept


def test_unknown_image_keys_name_the_closest_key() -> None:
    with pytest.raises(ConfigError, match="did you mean 'model.latent_dim'"):
        load_config(TINY, ["model.latent_dims=4"], schema=ImageExperimentConfig)
    with pytest.raises(ConfigError, match="loss.warmup.step"):
        load_config(TINY, ["loss.warmup.step=4"], schema=ImageExperimentConfig)
    cfg = load_config(TINY, ["model.kind=gan"], schema=ImageExperimentConfig)
    with pytest.raises(ConfigError, match="model.kind='gan' is unknown"):
        build_image_model(resolve_image_config(cfg, build_image_datasets(cfg)[0]).model)


# ------------------------------------------------------------------------------------------ builders
@pytest.mark.parametrize("path", IMAGE_CONFIGS, ids=lambda p: p.stem)
def test_every_image_config_builds_and_takes_a_finite_step(path: Path) -> None:
    cfg = load_config(path, ["data.subset=300", "data.num_test=50"], schema=ImageExperimentConfig)
    train, test = build_image_datasets(cfg)
    cfg = resolve_image_config(cfg, train)
    torch.manual_seed(0)
    model = build_image_model(cfg.model)
    batch = torch.utils.data.default_collate([train[i] for i in range(8)])
    out = build_image_objective(cfg)(model, batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_m2_training_set_keeps_a_stratified_fraction_of_labels() -> None:
    cfg = load_config(ROOT / "configs" / "image" / "m2_digits.yaml", schema=ImageExperimentConfig)
    train, test = build_image_datasets(cfg)
    labels = np.array([train[i]["label"] for i in range(len(train))])
    true = train.dataset.labels
    kept = labels >= 0
    assert abs(kept.mean() - 0.1) < 0.01 and (labels[kept] == true[kept]).all()
    assert set(true[kept]) == set(range(10))  # every class keeps some labels
    assert all(test[i]["label"] >= 0 for i in range(len(test)))  # the test set is fully labelled
    assert resolve_image_config(cfg, train).model.num_classes == 10


# ------------------------------------------------------------------------------------------ train / load
def test_trained_weights_round_trip_through_load_image_model(tmp_path: Path) -> None:
    cfg = load_config(TINY, [f"train.out_dir={tmp_path / 'run'}"], schema=ImageExperimentConfig)
    train, test = build_image_datasets(cfg)
    cfg = resolve_image_config(cfg, train)
    torch.manual_seed(0)
    model = build_image_model(cfg.model)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, build_image_objective(cfg), train, cfg.train, batch_size=cfg.data.batch_size,
                      valid_data=test, run_config=config_to_dict(cfg))
    trainer.fit()
    trained = trainer.unwrapped_model().eval()
    loaded, loaded_cfg = load_image_model(tmp_path / "run")
    assert loaded_cfg == cfg and loaded_cfg.model.image_shape == [1, 8, 8]
    assert int(loaded.train_steps) == cfg.train.max_steps
    assert not torch.equal(initial["encoder.net.0.weight"], loaded.state_dict()["encoder.net.0.weight"])
    x = torch.stack([test[i]["image"] for i in range(16)])
    z = torch.randn(16, cfg.model.latent_dim)
    with torch.no_grad():
        for a, b in zip(trained.posterior(x), loaded.posterior(x), strict=True):
            assert torch.equal(a, b)
        assert torch.equal(trained.decode(z), loaded.decode(z))


def test_train_image_fills_the_shape_and_evaluate_image_scores_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli(train_image, [str(TINY), f"train.out_dir={run}", "train.max_steps=30"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["image_shape"] == [1, 8, 8] and saved["model"]["num_classes"] == 0
    assert cli(evaluate_image, ["--checkpoint", str(run), "--samples", "300", "--chunk", "128"]) == 0
    result = json.loads((run / "eval" / "eval.json").read_text())
    assert result["items"] == 500 and result["samples"] == 300 and result["dims"] == 64
    assert math.isfinite(result["nll"]) and math.isfinite(result["elbo"]) and result["nll"] > 0
    assert result["nll"] <= result["neg_elbo"]  # importance sampling tightens the bound on the same data
    assert result["bpd"] == pytest.approx(result["nll"] / (64 * math.log(2)), rel=1e-12)
    assert result["uniform_nll"] == pytest.approx(64 * math.log(2))  # binarized data: not 64 ln 17
    assert 0 <= result["active_units"] <= result["latent_dim"] == 8
    assert 0 <= result["mutual_information"] <= math.log(100) + 1e-9  # the minibatch estimator's range
    from matplotlib.image import imread

    assert imread(run / "eval" / "samples.png").shape[:2] == ((8 * 9 + 1) * 4, (8 * 9 + 1) * 4)
    assert imread(run / "eval" / "traversal.png").shape[:2] == ((8 * 9 + 1) * 4, (9 * 9 + 1) * 4)
    assert (run / "eval" / "interpolation.png").is_file() and "| nll |" in (run / "eval" / "eval.md").read_text()


def test_more_importance_samples_do_not_loosen_the_bound(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli(train_image, [str(TINY), f"train.out_dir={run}", "train.max_steps=40"])
    nll = {}
    for k in (1, 200):
        cli(evaluate_image, ["--checkpoint", str(run), "--samples", str(k), "--out", str(tmp_path / f"k{k}")])
        nll[k] = json.loads((tmp_path / f"k{k}" / "eval.json").read_text())["nll"]
    assert nll[200] < nll[1] - 0.05  # K = 1 is a one-sample ELBO estimate; K = 200 is visibly tighter


def test_conditional_evaluation_draws_analogies(tmp_path: Path) -> None:
    run = tmp_path / "cvae"
    cli(train_image, [str(ROOT / "configs" / "image" / "cvae_digits.yaml"), f"train.out_dir={run}",
                      "train.max_steps=10", "train.tensorboard=false", "train.progress=false"])
    cli(evaluate_image, ["--checkpoint", str(run), "--samples", "20"])
    result = json.loads((run / "eval" / "eval.json").read_text())
    assert "analogy.png" in result["grids"]
    # the marginal -log p(x) (y enumerated) and the conditional -log p(x|y) are both reported, and differ
    assert result["nll"] != result["nll_given_label"]
    # log p(x|y) - log p(x) = log p(y|x) + log 10 <= log 10 (up to estimator noise): the uniform p(y) is counted
    assert result["nll"] - result["nll_given_label"] <= math.log(10) + 0.5
    from matplotlib.image import imread

    # 8 rows (test digits) x (original + 10 classes)
    assert imread(run / "eval" / "analogy.png").shape[:2] == ((8 * 9 + 1) * 4, (11 * 9 + 1) * 4)


def test_evaluate_image_returns_the_metrics_and_grids_it_writes(tmp_path: Path) -> None:
    """The command's result is its eval.json, its grids are the PNGs; a hand-made Namespace without the dsprites
    options (the demo's) gives the same report."""
    run = tmp_path / "run"
    assert cli(train_image, [str(TINY), f"train.out_dir={run}", "train.max_steps=2"]) == 0
    parser = argparse.ArgumentParser()
    evaluate_image.add_parser(parser)
    result = evaluate_image.execute(parser.parse_args(["--checkpoint", str(run), "--samples", "8", "--seed", "2"]))
    written = json.loads((run / "eval" / "eval.json").read_text())
    assert written == json.loads(json.dumps(result.metrics)) and written["samples"] == 8
    assert written["grids"] == list(result.grids) == ["samples.png", "traversal.png", "interpolation.png"]
    from matplotlib.image import imread

    for name, grid in result.grids.items():
        assert imread(run / "eval" / name).shape[:2] == grid_array(grid, upscale=4).shape[:2]
    assert evaluate_image.run(argparse.Namespace(checkpoint=str(run), samples=8, chunk=500, batch_size=100, seed=2,
                                                 disentangle_samples=0, out=str(tmp_path / "again"))) == 0
    assert json.loads((tmp_path / "again" / "eval.json").read_text()) == written
    assert uniform_nll(64, 2) == pytest.approx(64 * math.log(2)) and uniform_nll(64, None) is None


def test_image_prior_metrics_score_the_code_maps_and_decode_a_row_per_class() -> None:
    torch.manual_seed(0)
    vqvae = image_vqvae(VectorQuantizerEMA(num_codes=8, dim=4), 1, width=8, factors=(2,), depth=1).eval()
    prior = GatedPixelCNN2d(8, channels=8, layers=2, num_labels=3).eval()
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        codes = vqvae.encode(x)  # (6, 4, 4)
        nll = -prior.log_prob(codes, {"label": y}).double().mean().item()
        mse = (vqvae(x).recon - x).square().mean().item()
    images = [{"image": x[i], "label": y[i]} for i in range(6)]
    result = image_prior_metrics(prior, CodeMapDataset(codes, y), vqvae, images, vqvae_run="runs/vq", temperature=0.9,
                                 seed=1, batch_size=4)  # two batches
    m = result.metrics
    assert (m["vqvae"], m["items"], m["code_map"], m["num_codes"], m["conditional"]) == ("runs/vq", 6, "4x4", 8, True)
    assert m["code_nll"] == pytest.approx(nll, rel=1e-6)
    assert m["bits_per_code"] == pytest.approx(nll / (16 * math.log(2))) and m["uniform_code_nll"] == pytest.approx(
        16 * math.log(8))
    assert m["vqvae_mse"] == pytest.approx(mse, rel=1e-5)
    assert m["grids"] == list(result.grids) == ["samples.png", "reconstructions.png"]
    assert result.grids["samples.png"].shape == (3, 8, 1, 8, 8)  # 8 samples in a row per class
    assert result.grids["reconstructions.png"].shape == (2, 4, 1, 8, 8)  # the first batch: originals above theirs


# ------------------------------------------------------------------------------------------ image VQ-VAE + prior
PRIOR_CONFIG = ROOT / "configs" / "image" / "pixelcnn_vqvae_digits.yaml"
QUIET = ["train.tensorboard=false", "train.progress=false"]


@pytest.fixture(scope="module")
def vqvae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("vq") / "vqvae"
    cli(train_image, [str(ROOT / "configs" / "image" / "vqvae_digits.yaml"), f"train.out_dir={run}",
                      "train.max_steps=100", "train.valid_every=100", "train.ckpt_every=100", *QUIET])
    return run


def test_image_prior_trains_on_the_vqvae_codes_and_beats_the_uniform_code_model(vqvae_run: Path,
                                                                                tmp_path: Path) -> None:
    run = tmp_path / "prior"
    assert cli(train_image_prior, [str(PRIOR_CONFIG), f"vqvae={vqvae_run}", f"train.out_dir={run}",
                                   "train.max_steps=150", "train.valid_every=150", "prior.dim=32", "prior.layers=3",
                                   *QUIET]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["prior"]["num_codes"] == 32 and saved["prior"]["labels"] == [str(c) for c in range(10)]
    assert cli(evaluate_image, ["--checkpoint", str(run), "--seed", "3"]) == 0
    result = json.loads((run / "eval" / "eval.json").read_text())
    assert result["items"] == 500 and result["code_map"] == "4x4" and result["conditional"]
    assert result["bits_per_code"] < 0.8 * math.log2(32), result  # well below the uniform 5 bits per code
    # the reported NLL is the prior's log-probability of the VQ-VAE's own codes of the test images
    from audiolvm.builders import load_image_prior

    prior, cfg = load_image_prior(run)
    vqvae, vq_cfg = load_image_model(vqvae_run)
    test = build_image_datasets(vq_cfg)[1]
    x = torch.stack([test[i]["image"] for i in range(len(test))])
    y = torch.tensor([int(test[i]["label"]) for i in range(len(test))])
    with torch.no_grad():
        nll = -prior.log_prob(vqvae.encode(x), {"label": y}).double().mean().item()
    assert result["code_nll"] == pytest.approx(nll, rel=1e-5)
    from matplotlib.image import imread

    assert imread(run / "eval" / "samples.png").shape[:2] == ((10 * 9 + 1) * 4, (8 * 9 + 1) * 4)  # a row per class
    from audiolvm_pipelines.info import checkpoint_info

    prior_info, vq_info = checkpoint_info(str(run)), checkpoint_info(str(vqvae_run))
    assert (prior_info["run"], prior_info["prior"], prior_info["labels"], prior_info["source"]) == (
        "image_prior", "pixelcnn2d", 10, str(vqvae_run))
    assert (vq_info["run"], vq_info["model"], vq_info["codes"]) == ("image", "vqvae", 32)


def test_image_prior_refuses_a_run_that_is_not_a_vqvae(tmp_path: Path) -> None:
    vae = tmp_path / "vae"
    cli(train_image, [str(TINY), f"train.out_dir={vae}", "train.max_steps=2"])
    cfg = load_config(PRIOR_CONFIG, [f"vqvae={vae}"], schema=ImagePriorExperimentConfig)
    with pytest.raises(ConfigError, match="'vae' model; an image prior needs an image VQ-VAE run"):
        build_image_code_data(cfg)
    with pytest.raises(ValueError, match="integer code maps"):
        CodeMapDataset(torch.zeros(2, 4, 4))


# ------------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("warmup", [False, True], ids=["plain", "kl_warmup"])
def test_resume_reproduces_uninterrupted_training(tmp_path: Path, warmup: bool) -> None:
    extra = ["loss.warmup.kind=linear", "loss.warmup.steps=30"] if warmup else []
    full, parts = tmp_path / "full", tmp_path / "parts"
    cli(train_image, [str(TINY), f"train.out_dir={full}", *extra])
    cli(train_image, [str(TINY), f"train.out_dir={parts}", *extra, "--stop-after", "10"])
    assert not (parts / "checkpoints" / "step_20").exists()
    cli(train_image, [str(TINY), f"train.out_dir={parts}", *extra, "--resume"])
    for name in ("kl/weight", "kl", "loss"):
        a, b = train_rows(full, name), train_rows(parts, name)
        assert a.keys() >= {15, 20} and all(a[s] == b[s] for s in (15, 20)), (name, a, b)
    if warmup:  # the weight ramps over steps 0..29: its mean over steps 10..14 is (10+..+14)/5/30 = 0.4
        assert train_rows(parts, "kl/weight")[15] == pytest.approx(0.4)
    a, b = load_image_model(full)[0].state_dict(), load_image_model(parts)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ demo stage
def test_demo_image_stage_writes_grids_and_the_nll_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    stage = demo_images.run_images(tmp_path, steps=5, samples=10, vq_steps=5)
    assert [m["k"] for m in stage["models"]] == [1, 5]
    for name in ("vae_digits", "iwae_digits"):
        for grid in ("samples.png", "traversal.png"):
            assert (tmp_path / "images" / name / "eval" / grid).is_file()
    table = (tmp_path / "images" / "nll.md").read_text()
    assert "vae_digits" in table and "iwae_digits" in table and "K=10" in table
    report = "\n".join(demo_images.report_lines(stage))
    assert "64 ln 2 = 44.4 nats" in report and "181.3" in report
    assert all(m["nll"] <= m["neg_elbo"] for m in stage["models"])
    assert (tmp_path / "images" / "pixelcnn_vqvae_digits" / "eval" / "samples.png").is_file()
    assert "bits per code" in report and stage["vq"]["code_map"] == "4x4"


def test_dsprites_evaluation_adds_mig_and_factor_vae(tmp_path: Path) -> None:
    run = tmp_path / "dsprites"
    cli(train_image, [str(ROOT / "configs" / "image" / "beta_vae_dsprites.yaml"), f"train.out_dir={run}",
                      "data.subset=300", "data.num_test=64", "model.width=8", "train.max_steps=4",
                      "train.tensorboard=false", "train.progress=false"])
    cli(evaluate_image, ["--checkpoint", str(run), "--samples", "4", "--disentangle-samples", "200",
                         "--factor-votes", "20"])
    result = json.loads((run / "eval" / "eval.json").read_text())
    assert result["dims"] == 64 * 64 and result["uniform_nll"] == pytest.approx(4096 * math.log(2))
    assert 0 <= result["mig"] <= 1 and 0 <= result["factor_vae"] <= 1 and len(result["mig_per_factor"]) == 5
