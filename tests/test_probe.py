"""Phone / speaker probes: metric properties on synthetic frames, ABX limits, and `audiolvm probe` end to end."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from audiolvm.builders import load_model, split_entries_for
from audiolvm.data.phones import load_phone_tier
from audiolvm.eval.abx import abx_error, phone_segments
from audiolvm.eval.probe import (
    METRICS,
    SYSTEMS,
    CodePhoneReader,
    LevelFrames,
    linear_probe_accuracy,
    mfcc_frames,
    phone_ids,
    speaker_probe_accuracy,
)
from audiolvm.eval.units import cluster_purity, code_phone_accuracy, pnmi, purity
from audiolvm_pipelines import probe
from audiolvm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")


def _phones(n: int, seed: int = 0) -> np.ndarray:
    """Skewed phone labels (class 0 is the majority, about 40%)."""
    p = np.array([0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    return np.random.default_rng(seed).choice(len(p), size=n, p=p)


def test_codes_equal_to_phones_are_perfect() -> None:
    phones = _phones(5000)
    train = np.arange(5000) < 4000
    acc, majority, pred = code_phone_accuracy(phones, phones, train)
    assert acc == 1.0 and np.array_equal(pred, phones[~train])
    assert majority == pytest.approx(np.mean(phones[~train] == 0))
    assert purity(phones, phones) == 1.0
    assert normalized_mutual_info_score(phones, phones) == pytest.approx(1.0)
    relabelled = (phones * 7 + 3) % 11  # any one-to-one code naming is as good
    assert code_phone_accuracy(relabelled, phones, train)[0] == 1.0 and purity(relabelled, phones) == 1.0


def test_random_codes_score_the_majority_baseline() -> None:
    phones = _phones(25000, seed=1)
    codes = np.random.default_rng(2).integers(0, 16, size=25000)
    train = np.arange(25000) < 20000
    acc, majority, _ = code_phone_accuracy(codes, phones, train)
    assert abs(acc - majority) < 0.02 and 0.35 < majority < 0.45
    assert normalized_mutual_info_score(phones, codes) < 0.01


def test_pnmi_is_one_for_codes_equal_to_phones_and_about_zero_for_random_codes() -> None:
    phones = _phones(25000, seed=1)
    assert pnmi(phones, phones) == pytest.approx(1.0) and pnmi((phones * 7 + 3) % 11, phones) == pytest.approx(1.0)
    assert pnmi(np.random.default_rng(2).integers(0, 16, size=25000), phones) < 0.01
    merged = np.where(phones == 1, 0, phones)  # one code for phones 0 and 1: it no longer tells them apart
    assert 0.5 < pnmi(merged, phones) < 1.0


def test_phone_and_cluster_purity_match_a_hand_computed_example() -> None:
    # code 0: phones a a b (majority a: 2); code 1: phones b c c c (majority c: 3); code 2: phone a (1) -> 6 / 8
    codes = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    phones = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    assert purity(codes, phones) == pytest.approx(6 / 8)
    # phone a: codes 0 0 2 (2); phone b: codes 0 1 (1); phone c: codes 1 1 1 (3) -> 6 / 8
    assert cluster_purity(codes, phones) == pytest.approx(6 / 8)
    assert cluster_purity(np.zeros(8, int), phones) == 1.0 and purity(np.zeros(8, int), phones) == pytest.approx(3 / 8)


def test_unseen_codes_predict_the_train_majority() -> None:
    codes = np.array([0, 0, 1, 1, 1, 5, 9])
    phones = np.array([2, 2, 3, 3, 2, 4, 4])
    train = np.array([True] * 5 + [False] * 2)  # codes 5 and 9 never occur in training
    acc, majority, pred = code_phone_accuracy(codes, phones, train)
    assert pred.tolist() == [2, 2] and acc == 0.0 and majority == 0.0


def test_linear_probe_separates_informative_features_only() -> None:
    phones = _phones(4000, seed=3)
    train = np.arange(4000) < 3000
    rng = np.random.default_rng(4)
    informative = np.eye(6)[phones] + 0.1 * rng.normal(size=(4000, 6))
    noise = rng.normal(size=(4000, 6))
    assert linear_probe_accuracy(informative, phones, train, max_frames=2000) > 0.99
    assert linear_probe_accuracy(noise, phones, train, max_frames=2000) < 0.5


def _segments_frames(n_utts: int = 40, frames_per_phone: int = 3, seed: int = 0):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    phone = np.repeat(rng.integers(0, 5, size=n_utts * 20), frames_per_phone)  # runs of equal phones
    utterance = np.repeat(np.arange(n_utts), 20 * frames_per_phone)
    speaker = utterance % 4
    return phone, speaker, utterance


@pytest.mark.parametrize("across", [False, True])
def test_abx_is_zero_for_separated_and_half_for_identical_embeddings(across: bool) -> None:
    phone, speaker, utterance = _segments_frames()
    separated = phone_segments(np.eye(5)[phone] * 3.0, phone, speaker, utterance)
    identical = phone_segments(np.ones((len(phone), 4)), phone, speaker, utterance)
    assert abx_error(separated, across=across, num_triplets=5000) == 0.0
    assert abx_error(identical, across=across, num_triplets=5000) == 0.5
    noisy = phone_segments(np.random.default_rng(1).normal(size=(len(phone), 4)), phone, speaker, utterance)
    assert abs(abx_error(noisy, across=across, num_triplets=5000) - 0.5) < 0.03


def test_phone_segments_pool_runs_within_utterances() -> None:
    emb = np.arange(6, dtype=np.float64)[:, None]  # (6, 1)
    seg = phone_segments(emb, np.array([1, 1, 2, 2, 2, 0]), np.zeros(6, np.int64), np.array([0, 0, 0, 1, 1, 1]),
                         skip=0)
    assert seg.phone.tolist() == [1, 2, 2] and seg.emb[:, 0].tolist() == [0.5, 2.0, 3.5]


def _frames(codes: np.ndarray, speaker: np.ndarray, utterance: np.ndarray, train: np.ndarray) -> LevelFrames:
    n = len(codes)
    return LevelFrames(0, 160, 16000, 32, np.zeros(n, np.int64), speaker, utterance, train, ["s0", "s1", "s2"])


def test_speaker_probe_reads_speaker_codes_and_reports_chance() -> None:
    utterance = np.repeat(np.arange(30), 300)  # 30 utterances of 3 s at 100 frames/s
    speaker = utterance % 3
    train = utterance < 24
    rng = np.random.default_rng(0)
    codes = speaker * 10 + rng.integers(0, 10, size=len(utterance))  # disjoint code ranges per speaker
    assert speaker_probe_accuracy(_frames(codes, speaker, utterance, train), codes, 100) == 1.0
    shared = rng.integers(0, 30, size=len(utterance))  # no speaker information
    assert speaker_probe_accuracy(_frames(shared, speaker, utterance, train), shared, 100) < 0.7


@pytest.mark.parametrize(("length", "hop"), [(16000, 64), (1000, 320), (50, 32), (100, 1024)])
def test_mfcc_frames_have_one_row_per_code(length: int, hop: int) -> None:
    n = -(-length // hop)
    wave = np.random.default_rng(0).normal(size=length).astype(np.float32) * 0.1
    feats = mfcc_frames(wave, 16000, hop, n)
    assert feats.shape == (n, 39) and np.isfinite(feats).all()


# ----------------------------------------------------------------------------- the command


def _subset(dest: Path, speakers: tuple[str, ...] = ("e01", "e02"), utts: int = 5) -> Path:
    src = ROOT / "data" / "speech"
    for spk in speakers:
        (dest / "wav48_silence_trimmed" / spk).mkdir(parents=True)
        (dest / "txt" / spk).mkdir(parents=True)
        for flac in sorted((src / "wav48_silence_trimmed" / spk).glob("*.flac"))[:utts]:
            for f in (flac, flac.with_suffix(".TextGrid")):
                shutil.copy(f, dest / "wav48_silence_trimmed" / spk / f.name)
            txt = flac.name.replace("_mic1.flac", ".txt")
            shutil.copy(src / "txt" / spk / txt, dest / "txt" / spk / txt)
    return dest


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    data = _subset(tmp_path_factory.mktemp("speech"))
    out = tmp_path_factory.mktemp("probe") / "run"
    assert main(["train", TINY, f"data.root={data}", f"train.out_dir={out}", "train.max_steps=3"]) == 0
    return out, data


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    probe.add_parser(parser)
    return parser.parse_args(list(argv))


def test_probe_command_writes_tables_json_and_confusion(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = tiny_run
    assert probe.run(_args("--checkpoint", str(run_dir), "--out", str(tmp_path), "--max-frames", "3000")) == 0
    assert (tmp_path / "confusion_level0.png").stat().st_size > 0
    table = (tmp_path / "probe.md").read_text()
    assert "## level 0 (hop 8, 2000 Hz codes, K=64)" in table
    for name in SYSTEMS.values():
        assert sum(line.startswith(f"| {name} |") for line in table.splitlines()) == 1
    report = json.loads((tmp_path / "probe.json").read_text())
    level = report["levels"][0]
    assert report["best_level"] == 0 and level["speakers"] == 2 and level["test_frames"] > 0
    assert set(level["rows"]) == set(SYSTEMS)
    for row in level["rows"].values():
        assert set(row) == set(METRICS)
        assert all(v is None or 0.0 <= v <= 1.0 for v in row.values())
        assert row["speaker_chance"] == 0.5
    confusion = np.array(level["confusion_test"]["counts"])
    assert confusion.sum() == level["test_frames"]
    assert 0.0 <= level["phone_speaker_acc"] <= 1.0  # the speaker probe on the true phone labels
    assert f"true phone labels (same windows): {level['phone_speaker_acc']:.3f}" in table


def test_probe_user_errors_name_the_file_or_option(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, data = tiny_run
    broken = shutil.copytree(data, tmp_path / "broken")
    grids = sorted(broken.rglob("*.TextGrid"))
    grids[3].unlink()
    with pytest.raises(FileNotFoundError, match=grids[3].stem + r"\.flac: no alignment beside it"):
        probe.run(_args("--checkpoint", str(run_dir), "--data", str(broken), "--out", str(tmp_path / "p")))
    with pytest.raises(ValueError, match="levels 0..0"):
        probe.run(_args("--checkpoint", str(run_dir), "--levels", "1"))
    with pytest.raises(ValueError, match="--unknown-phone 'xx' is not a phone class"):
        probe.run(_args("--checkpoint", str(run_dir), "--unknown-phone", "xx"))


def test_code_phone_reader_on_its_own_training_utterance_scores_its_purity(tiny_run: tuple[Path, Path]) -> None:
    """Fitted on one utterance, the code->phone reader's accuracy on that utterance is exactly the purity of
    its codes against its majority phone labels (each code reads as its most frequent phone there)."""
    run_dir, data = tiny_run
    model, cfg = load_model(run_dir)
    reader, selected = split_entries_for(cfg, "all", data)
    entry = selected[0][0]
    tier = load_phone_tier(entry.path)
    phones = CodePhoneReader.fit(model, reader, [entry], {entry.path: tier}, 0, 16000)
    wave = reader.load(entry, 16000)
    codes = model.encode(torch.from_numpy(wave)[None, None])[0][0].numpy()
    labels = phone_ids(tier, len(codes), model.hops[0] / 16000)
    assert phones.accuracy(model, wave, tier) == pytest.approx(purity(codes, labels))
    assert len(set(labels.tolist())) > 3  # a real alignment, not one phone
