"""Prior training on codes on disk: windows, config resolution, the train-prior command, reloading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiolvm.builders import load_model, load_prior, resolve_prior_config
from audiolvm.config import ConfigError, PriorExperimentConfig, load_config
from audiolvm.core.audio import load_audio, save_audio
from audiolvm.data.codes import CodeItem, CodeStore, CodeWindowDataset, CodeWriter, LevelInfo
from audiolvm_pipelines.cli import main
from audiolvm_pipelines.info import checkpoint_info

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("codes")
    rng = np.random.default_rng(0)
    with CodeWriter(root, [LevelInfo(0, 8, 16), LevelInfo(1, 32, 8)], 16000) as writer:
        for i, n in enumerate((200, 130, 64, 300, 90)):
            lower = rng.integers(0, 16, size=n)
            writer.add(CodeItem(id=f"t{i}", speaker=f"s{i % 2}", split="valid" if i == 4 else "train"),
                       [lower, lower[::4] % 8])  # the upper level is a function of the lower one
    return root


def test_windows_are_deterministic_aligned_and_padded(store_dir: Path) -> None:
    store = CodeStore(store_dir)
    ds = CodeWindowDataset(store, level=0, window=128, split="train", seed=3, upper_level=1)
    assert ds.labels == ["s0", "s1"] and len(ds) == 4
    epoch0 = [ds[i]["codes"] for i in range(len(ds))]
    assert all(torch.equal(a, ds[i]["codes"]) for i, a in enumerate(epoch0))  # depends on (seed, epoch, i) only
    ds.set_epoch(1)
    assert any(not torch.equal(a, ds[i]["codes"]) for i, a in enumerate(epoch0))  # a new epoch moves windows
    for i in range(len(ds)):
        item = ds[i]
        n_real = int(item["mask"].sum())
        assert item["codes"].shape == (128,) and item["upper"].shape == (32,)
        assert torch.equal(item["upper"][: n_real // 4], (item["codes"][:n_real:4] % 8)[: n_real // 4])
    short = ds[2]  # 64 codes < window 128
    assert int(short["mask"].sum()) == 64 and int(short["codes"][64:].abs().sum()) == 0


def test_resolve_fills_the_prior_from_the_codes(store_dir: Path) -> None:
    cfg = load_config(None, [f"codes.root={store_dir}", "codes.upper_level=1", "prior.kind=upsampler"],
                      schema=PriorExperimentConfig)
    resolved = resolve_prior_config(cfg, CodeStore(store_dir))
    assert (resolved.prior.num_codes, resolved.prior.upper_num_codes, resolved.prior.upsample) == (16, 8, 4)
    bad = load_config(None, [f"codes.root={store_dir}", "prior.kind=upsampler"], schema=PriorExperimentConfig)
    with pytest.raises(ConfigError, match="upper_level"):
        resolve_prior_config(bad, CodeStore(store_dir))


@pytest.mark.parametrize("kind", ["transformer", "upsampler", "pixelcnn1d"])
def test_train_prior_command_then_reload_and_sample(store_dir: Path, tmp_path: Path, kind: str) -> None:
    overrides = [f"codes.root={store_dir}", "codes.level=0", "codes.window=64", "codes.batch_size=2",
                 f"prior.kind={kind}", "prior.dim=32", "prior.layers=2", "prior.heads=2", "prior.context=64",
                 "train.max_steps=3",
                 f"train.out_dir={tmp_path}", "train.tensorboard=false", "train.progress=false"]
    if kind == "upsampler":
        overrides.append("codes.upper_level=1")
    assert main(["train-prior", str(ROOT / "configs" / "demo" / "prior_top.yaml"), *overrides]) == 0
    prior, cfg = load_prior(tmp_path)
    assert cfg.prior.num_codes == 16 and cfg.prior.labels == ["s0", "s1"]
    info = checkpoint_info(str(tmp_path))
    assert (info["run"], info["prior"], info["codes"], info["labels"]) == ("prior", kind, 16, 2)
    cond = {"label": torch.tensor([0, 1])}
    if kind == "upsampler":
        cond["upper"] = torch.randint(0, 8, (2, 10))
    g = torch.Generator().manual_seed(0)
    sample = prior.sample(2, 40, cond=cond, generator=g, progress=False)
    assert sample.shape == (2, 40) and int(sample.min()) >= 0 and int(sample.max()) < 16


def test_sample_command_runs_the_ancestral_chain(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """VQ-VAE -> codes on disk -> top prior + upsampler -> `audiolvm sample`: WAVs of the asked length,
    identical under the same seed, different under another, and a --speaker outside the labels is refused."""
    data, vq = f"data.root={ROOT / 'data' / 'speech'}", tmp_path / "vq"
    assert main(["train", str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml"), data, f"train.out_dir={vq}",
                 "train.max_steps=2", "model.strides=[[2, 4], [4]]"]) == 0
    assert main(["encode", "--checkpoint", str(vq), "--out", str(tmp_path / "codes")]) == 0
    common = [f"codes.root={tmp_path / 'codes'}", "codes.window=64", "codes.batch_size=4", "prior.dim=32",
              "prior.layers=1", "prior.heads=2", "prior.context=64", "train.max_steps=2"]
    assert main(["train-prior", str(ROOT / "configs" / "demo" / "prior_top.yaml"), *common, "codes.level=1",
                 f"train.out_dir={tmp_path / 'top'}"]) == 0
    assert main(["train-prior", str(ROOT / "configs" / "demo" / "upsampler.yaml"), *common, "codes.level=0",
                 "codes.upper_level=1", f"train.out_dir={tmp_path / 'up'}"]) == 0
    runs = ["--vqvae", str(vq), "--prior", str(tmp_path / "top"), "--upsamplers", str(tmp_path / "up"),
            "--seconds", "0.5", "--n", "2", "--speaker", "e03"]
    waves = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["sample", *runs, "--seed", seed, "--out", str(tmp_path / name)]) == 0
        waves[name] = load_audio(tmp_path / name / "sample_00.wav")[0]
    assert len(waves["a"]) == 8000 and (tmp_path / "a" / "sample_01.png").is_file()
    assert np.array_equal(waves["a"], waves["b"]) and not np.array_equal(waves["a"], waves["c"])
    assert main(["sample", *runs[:-1], "nobody", "--out", str(tmp_path / "d")]) == 2
    assert main(["sample", *runs, "--n", "0", "--out", str(tmp_path / "d")]) == 2
    assert main(["sample", *runs, "--seconds", "inf", "--out", str(tmp_path / "d")]) == 2
    # a VQ-VAE of the same shape but other weights: its codebooks differ, so the priors are refused
    other = tmp_path / "other_vq"
    assert main(["train", str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml"), data, f"train.out_dir={other}",
                 "train.max_steps=2", "train.seed=7", "model.strides=[[2, 4], [4]]"]) == 0
    assert main(["sample", "--vqvae", str(other), *runs[2:], "--out", str(tmp_path / "d")]) == 2
    assert "trained on codes of" in capsys.readouterr().err

    # staged sampling: keep every level's codes, then resume from the saved top level (only the upsampler
    # runs) or decode the saved lowest level: the same audio, bit for bit, as the run straight through
    assert main(["sample", *runs, "--seed", "1", "--save-codes", "--out", str(tmp_path / "s")]) == 0
    saved = tmp_path / "s" / "codes"
    assert sorted(p.name for p in saved.glob("level*.npy")) == ["level0.npy", "level1.npy"]
    straight = (tmp_path / "a" / "sample_01.wav").read_bytes()
    assert (tmp_path / "s" / "sample_01.wav").read_bytes() == straight
    resume = ["sample", "--vqvae", str(vq), "--from-codes", str(saved)]
    assert main([*resume, "--upsamplers", str(tmp_path / "up"), "--level", "1", "--out", str(tmp_path / "r1")]) == 0
    assert main([*resume, "--level", "0", "--out", str(tmp_path / "r0")]) == 0
    assert (tmp_path / "r1" / "sample_01.wav").read_bytes() == straight
    assert (tmp_path / "r0" / "sample_01.wav").read_bytes() == straight
    assert main([*resume, "--upsamplers", str(tmp_path / "up"), "--level", "1", "--seed", "2",
                 "--out", str(tmp_path / "r2")]) == 0  # another seed for the upsampler: other level-0 codes
    assert (tmp_path / "r2" / "sample_01.wav").read_bytes() != straight
    assert main([*resume, "--level", "3", "--out", str(tmp_path / "bad")]) == 2  # not a saved level

    # the music measures of the samples (sample --measure) and of one stage (evaluate-prior --music): the
    # held-out reference scores 0 against itself, white noise is flat, every row has its columns
    assert main([*resume, "--level", "0", "--measure", "--out", str(tmp_path / "m")]) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "m" / "music_measures.json").read_text())["rows"]}
    assert rows["held-out originals (reference)"]["mel_fd"] == pytest.approx(0.0, abs=1e-6)
    assert rows["white noise"]["flatness"] > 0.4 and rows["white noise"]["mel_fd"] > 0
    assert set(rows) >= {"their level-0 reconstructions (hop 8)", "these samples (level 0)"}
    assert main(["evaluate-prior", "--prior", str(tmp_path / "up"), "--music", "2", "--seconds", "0.5",
                 "--out", str(tmp_path / "up.json")]) == 0
    stage = json.loads((tmp_path / "up.json").read_text())["music"][-1]
    assert stage["name"] == "held-out level-1 codes -> this upsampler -> level-0 decoder" and stage["clips"] == 2

    # --prime: the first 0.25 s of every sample is the prompt's own codes, so (away from the boundary, by
    # more than the decoder's receptive field) it is the prompt's reconstruction, whatever the seed
    prompt = ROOT / "data" / "speech" / "wav48_silence_trimmed" / "e02" / "e02_010_mic1.flac"
    wave = load_audio(prompt, sample_rate=16000)[0][4000:8000]  # 0.25 s with speech in it
    save_audio(tmp_path / "prompt.wav", wave, 16000)
    primed = []
    for seed in ("1", "2"):
        out = tmp_path / f"primed{seed}"
        assert main(["sample", *runs, "--prime", str(tmp_path / "prompt.wav"), "--seed", seed, "--out", str(out)]) == 0
        primed.append(load_audio(out / "sample_01.wav")[0])
    model, _ = load_model(vq)
    with torch.no_grad():
        recon = model.reconstruct(torch.from_numpy(wave)[None, None], level=0)[0, 0].numpy()
    assert np.abs(recon).max() > 1e-3
    for got in primed:
        np.testing.assert_allclose(got[:3000], recon[:3000], atol=2e-3)  # 12-bit WAV rounding and float noise
    assert not np.array_equal(primed[0][5000:], primed[1][5000:])  # the continuation depends on the seed


def test_evaluate_prior_counts_every_code_once(store_dir: Path) -> None:
    """A prior with all-zero logits is uniform: NLL must be exactly ln K per real (unpadded) code."""
    from audiolvm.eval.prior import evaluate_prior
    from audiolvm.models.priors import CausalTransformerPrior

    store = CodeStore(store_dir)
    prior = CausalTransformerPrior(num_codes=16, context=64, dim=16, layers=1, heads=2, num_labels=2)
    head = [m for m in prior.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(head.weight)  # the output head: logits are its bias (if any), else 0
    if head.bias is not None:
        torch.nn.init.zeros_(head.bias)
    for split, expected in (("train", 200 + 130 + 64 + 300), (None, 200 + 130 + 64 + 300 + 90)):
        result = evaluate_prior(prior, store, level=0, window=64, split=split, labels=["s0", "s1"])
        assert result["codes"] == expected
        assert result["nats_per_code"] == pytest.approx(np.log(16), abs=1e-5)
