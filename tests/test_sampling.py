"""Sampling in one call (audiolvm.eval.sampling) and encoding a corpus (audiolvm.eval.encode): what `audiolvm
sample` and `audiolvm encode` run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audiolvm.builders import build_model
from audiolvm.config import load_config
from audiolvm.data import Entry, open_corpus
from audiolvm.data.codes import CodeStore
from audiolvm.eval.encode import encode_corpus
from audiolvm.eval.sampling import read_saved_codes, resolve_settings, sample_chain, write_saved_codes
from audiolvm.models.chain import ChainStage, SamplingChain, SamplingSettings
from audiolvm.models.multilevel import MultiLevelAutoencoder
from audiolvm.models.priors import CausalTransformerPrior, UpsamplerPrior

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "data" / "speech"


@pytest.fixture(scope="module")
def model() -> MultiLevelAutoencoder:
    cfg = load_config(ROOT / "configs" / "tiny" / "speech_vqvae.yaml", ["model.strides=[[2, 4], [4]]",
                                                                       "model.vq.num_codes=[16, 8]"])
    torch.manual_seed(0)
    return build_model(cfg.model).eval()


@pytest.fixture(scope="module")
def chain(model: MultiLevelAutoencoder) -> SamplingChain:
    torch.manual_seed(1)
    top = CausalTransformerPrior(8, context=32, dim=16, layers=1, heads=2, num_labels=2)
    up = UpsamplerPrior(16, 8, upsample=4, context=32, dim=16, layers=1, heads=2)
    return SamplingChain(model, [ChainStage(top, 1, None, ["a", "b"]), ChainStage(up, 0, 1)], 16000)


def test_sampling_resumed_from_saved_codes_is_bitwise_the_straight_run(chain: SamplingChain, tmp_path: Path) -> None:
    settings = resolve_settings([1, 0], temperature={1: 1.0, 0: 0.8}, top_p={0: 0.9}, seed=3)
    full = sample_chain(chain, 2, 0.1, "b", settings, progress=False)
    assert full.level == 0 and full.audio.shape == (2, 1, 1600) and sorted(full.codes) == [0, 1]
    write_saved_codes(tmp_path, full.codes, settings, {"n": 2, "settings": {}})
    meta, start = read_saved_codes(tmp_path, level=1)
    assert list(start) == [1] and torch.equal(start[1], full.codes[1]) and meta["levels"] == [0, 1]
    saved = resolve_settings([0], meta["settings"])  # nothing given now: the settings the codes were drawn with
    assert saved[0] == settings[0] == SamplingSettings(0.8, None, 0.9, 3)
    below = SamplingChain(chain.model, [st for st in chain.stages if st.level not in start], 16000)
    resumed = sample_chain(below, 2, 0.1, "b", saved, start=start, progress=False)
    assert torch.equal(resumed.codes[0], full.codes[0]) and torch.equal(resumed.audio, full.audio)
    _, every = read_saved_codes(tmp_path)  # the lowest saved level, decoded without any prior
    assert torch.equal(sample_chain(SamplingChain(chain.model, [], 16000), 2, 0.1, "b", start=every).audio, full.audio)
    reseeded = sample_chain(below, 2, 0.1, "b", resolve_settings([0], meta["settings"], seed=4), start=start,
                            progress=False)  # a value given now wins over the saved one
    assert not torch.equal(reseeded.codes[0], full.codes[0])
    with pytest.raises(ValueError, match=r"holds levels \[0, 1\]"):
        read_saved_codes(tmp_path, level=2)


def test_sampling_continues_a_prompt_with_its_own_codes(chain: SamplingChain) -> None:
    prompt = torch.randn(1, 1, 800, generator=torch.Generator().manual_seed(0)) * 0.1  # 0.05 s
    own = chain.model.encode(prompt)  # [(1, N_l)] per level
    samples = sample_chain(chain, 2, 0.1, "a", SamplingSettings(seed=5), prime=prompt, progress=False)
    for level, codes in samples.codes.items():
        n = own[level].shape[1]
        assert torch.equal(codes[:, :n], own[level].expand(2, -1)), level


def test_encode_corpus_writes_the_models_codes_of_every_readable_item(model: MultiLevelAutoencoder,
                                                                       tmp_path: Path) -> None:
    reader = open_corpus(SPEECH)
    entries = [(e, "train" if i else "valid") for i, e in enumerate(reader.entries()[:3])]
    missing = Entry(str(tmp_path / "gone.wav"), "x", "gone", "", 1.0, 16000, 16000)
    before = sum(reader.skipped.values())
    summary = encode_corpus(model, reader, [*entries, (missing, "train")], tmp_path / "codes", 16000,
                            shard_frames=300, extra={"name": "t"}, progress=False)
    store = CodeStore(tmp_path / "codes")
    assert summary.items == len(store) == 3 and summary.skipped == before + 1 and store.meta["name"] == "t"
    assert [it.split for it in store.items] == ["valid", "train", "train"]
    for item, (entry, _) in zip(store.items, entries, strict=True):
        expected = model.encode(torch.from_numpy(reader.load(entry, 16000))[None, None])
        for level in range(2):
            assert np.array_equal(store.codes(item, level), expected[level][0].numpy()), (item.id, level)
    assert summary.frames == [sum(len(store.codes(it, lv)) for it in store.items) for lv in range(2)]
    assert len(list((tmp_path / "codes" / "level0").glob("shard_*.npy"))) > 1  # 300 codes per shard
