"""Codes on disk: the store format, and encode -> decode equal to the eval-mode reconstruction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiolvm.builders import load_model
from audiolvm.core.audio import load_audio
from audiolvm.data.codes import CodeItem, CodeStore, CodeWriter, LevelInfo
from audiolvm_pipelines.cli import main
from audiolvm_pipelines.decode import decode_item

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")


def test_store_round_trip_with_shards(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    levels = [LevelInfo(0, 8, 2048), LevelInfo(1, 32, 70000)]
    arrays = [[rng.integers(0, lv.num_codes, size=n) for lv, n in zip(levels, (n0, n0 // 4), strict=True)]
              for n0 in (40, 7, 100, 1)]
    with CodeWriter(tmp_path, levels, 16000, shard_frames=64, extra={"name": "x"}) as writer:
        for i, codes in enumerate(arrays):
            writer.add(CodeItem(id=f"item{i}", speaker="s", split="train"), codes)
    store = CodeStore(tmp_path)
    assert len(store) == 4 and store.sample_rate == 16000 and store.meta["name"] == "x"
    assert store.meta["levels"][0]["shards"] > 1  # 148 frames at 64 per shard
    for i, codes in enumerate(arrays):
        for level, expected in enumerate(codes):
            got = store.codes(i, level)
            assert isinstance(got.base, np.memmap) or isinstance(got, np.memmap)
            np.testing.assert_array_equal(got, expected)
    assert store.codes(0, 0).dtype == np.int16 and store.codes(0, 1).dtype == np.int32


def test_store_rejects_bad_codes_and_incomplete_folders(tmp_path: Path) -> None:
    writer = CodeWriter(tmp_path, [LevelInfo(0, 8, 16)], 16000)
    with pytest.raises(ValueError, match=r"outside \[0, 16\)"):
        writer.add(CodeItem(id="bad"), [np.array([3, 16])])
    writer.add(CodeItem(id="ok"), [np.array([1, 2])])  # never closed: an interrupted encode
    with pytest.raises(FileNotFoundError, match="not a complete code folder"):
        CodeStore(tmp_path)


@pytest.fixture(scope="module")
def three_level_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("codes") / "run"
    overrides = [f"data.root={ROOT / 'data' / 'speech'}", f"train.out_dir={out}", "train.max_steps=3",
                 "model.strides=[[2], [2], [2]]", "model.mode=conditioned"]
    assert main(["train", TINY, *overrides]) == 0
    return out


def test_encode_decode_equals_eval_reconstruction(three_level_run: Path, tmp_path: Path) -> None:
    codes_dir = tmp_path / "codes"
    assert main(["encode", "--checkpoint", str(three_level_run), "--out", str(codes_dir), "--split", "valid"]) == 0
    store = CodeStore(codes_dir)
    model, cfg = load_model(three_level_run)
    assert [lv.hop for lv in store.levels] == [2, 4, 8] and len(store) > 0
    for item in store.items[:3]:
        assert item.split == "valid" and item.speaker and Path(item.path).is_file()
        wave, _ = load_audio(item.path, sample_rate=cfg.data.sample_rate)
        recons = model.reconstruct(torch.from_numpy(wave)[None, None])
        for level in range(3):
            assert len(store.codes(item, level)) == -(-len(wave) // store.levels[level].hop)
            decoded = decode_item(model, store, item, level)
            torch.testing.assert_close(decoded, recons[level], rtol=0, atol=1e-6)
    out = tmp_path / "wav"
    assert main(["decode", "--checkpoint", str(three_level_run), "--codes", str(codes_dir), "--out", str(out),
                 "--items", store.items[0].id, "--level", "1"]) == 0
    assert [p.name for p in out.iterdir()] == [f"{store.items[0].id}_level1.wav"]


def test_evaluate_writes_one_row_per_level(three_level_run: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--checkpoint", str(three_level_run), "--limit", "3", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["level"] for r in rows] == ["level 0 (hop 2)", "level 1 (hop 4)", "level 2 (hop 8)"]
    assert all(r["items"] == 3 and r["bitrate_bps"] == 16000 / h * 6 for r, h in zip(rows, (2, 4, 8), strict=True))
    assert "si_sdr_db" in capsys.readouterr().out and (tmp_path / "metrics.csv").is_file()
