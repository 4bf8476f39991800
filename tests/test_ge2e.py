"""The pretrained GE2E speaker encoder (Resemblyzer's weights, in torch) and the speaker conditioning built on it
(``model.speaker.encoder_kind: ge2e``): it computes Resemblyzer's own embeddings, it is frozen and not saved with the
model, only its linear map trains, and the speaker table follows it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from audiolvm.builders import build_model, load_model
from audiolvm.config.audio import ModelConfig, SpeakerConfig
from audiolvm.config.common import VQConfig
from audiolvm.core.audio import load_audio
from audiolvm.core.errors import MissingFileError
from audiolvm.models.speaker import GE2ESpeakerEncoder, SpeakerConditioner
from audiolvm.nn import ge2e
from audiolvm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "data" / "speech" / "wav48_silence_trimmed"
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")
needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                       reason="Resemblyzer is not installed (pip install -e '.[speaker]')")


def clip(speaker: str, n: int) -> np.ndarray:
    return load_audio(SPEECH / speaker / f"{speaker}_{n:03d}_mic1.flac", sample_rate=16000)[0]


def test_partial_windows_are_resemblyzers() -> None:
    """The partial windows of every length, from under one window to several, edge cases of the coverage rule
    included, are those of Resemblyzer's ``compute_partial_slices`` (reimplemented here from its definition: 160
    frames every round(16000 / 1.3 / 160) = 77 frames, the last kept at >= 75 % coverage)."""
    def reference(n: int) -> list[int]:
        n_frames = int(np.ceil((n + 1) / 160))
        starts = list(range(0, max(1, n_frames - 160 + 77 + 1), 77))
        if len(starts) > 1 and (n - starts[-1] * 160) / (160 * 160) < 0.75:
            starts.pop()
        return [s * 160 for s in starts]

    lengths = [1, 8000, 25599, 25600, 25760, 37000, 12320 + 19200 - 1, 12320 + 19200, 12320 + 19200 + 1, 80000]
    for n in lengths:
        assert ge2e.partial_starts(n) == reference(n), n
    assert len(ge2e.partial_starts(80000)) > 2


@needs_resemblyzer
def test_embeddings_equal_resemblyzers_own() -> None:
    """``GE2E.embed`` (torch mel front end, batched partial windows) gives Resemblyzer's ``embed_utterance`` of the
    same waveform, for clips of one and of several windows; with ``normalize`` a quiet clip is raised to -30 dBFS
    as Resemblyzer's preprocessing does, so its embedding is the loud clip's."""
    from resemblyzer import VoiceEncoder

    net, reference = ge2e.GE2E.pretrained(), VoiceEncoder(device="cpu", verbose=False)
    long = np.concatenate([clip("e03", n) for n in (10, 11, 12)])  # several windows, a padded last one
    for wave in (long[:26000], long):
        ours = net.embed(torch.from_numpy(wave)[None, None], normalize=False)[0].numpy()
        np.testing.assert_allclose(ours, reference.embed_utterance(wave), atol=2e-6)
    loud = long / np.sqrt(np.mean(long ** 2)) * 10 ** (-30 / 20)  # exactly -30 dBFS
    both = net.embed(torch.from_numpy(np.stack([loud, 0.1 * loud]))[:, None])
    torch.testing.assert_close(both[0], both[1], rtol=0, atol=1e-5)
    assert float(both[0] @ net.embed(torch.from_numpy(long)[None, None], normalize=False)[0]) < 1 - 1e-4


@needs_resemblyzer
def test_ge2e_conditioning_is_frozen_unsaved_and_only_its_linear_map_trains(tmp_path: Path) -> None:
    torch.manual_seed(0)
    names = ["e01", "e02", "e03"]
    cfg = ModelConfig(strides=[[4, 4]], width=8, depth=1, vq=VQConfig(num_codes=[16], dim=8),
                      speaker=SpeakerConfig(levels=[0], dim=16, encoder=True, encoder_kind="ge2e", names=names,
                                            encoder_mix=1.0))
    model = build_model(cfg)
    encoder = model.speaker.encoder
    assert isinstance(encoder, GE2ESpeakerEncoder)
    frozen = {k: v.clone() for k, v in encoder.ge2e.state_dict().items()}
    # not a parameter, not in the state: only the linear map is the model's
    assert {k for k in model.state_dict() if k.startswith("speaker.encoder.")} == {
        "speaker.encoder.out.weight", "speaker.encoder.out.bias"}
    assert not any(p is q for p in model.parameters() for q in encoder.ge2e.parameters())
    x = torch.from_numpy(np.stack([clip(s, 10)[:8000] for s in names]))[:, None]
    ids = model.speaker.ids(names)
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    model.train()
    first = None
    for _ in range(30):
        loss = model(x, ids).losses["speaker/encoder"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first  # the table learns to follow the encoder
    # the direction of the pull: the matching term moves the table rows, never the encoder's map
    opt.zero_grad()
    model(x, ids).losses["speaker/encoder"].backward()
    assert encoder.out.weight.grad is None or not encoder.out.weight.grad.any()
    assert model.speaker.table.weight.grad is not None and model.speaker.table.weight.grad.abs().sum() > 0
    assert encoder.ge2e.training is False
    for key, value in encoder.ge2e.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    # a different dtype moves the frozen network too
    vector = model.speaker(x[:1])
    torch.testing.assert_close(model.double().speaker(x[:1].double()).float(), vector, rtol=1e-4, atol=1e-4)


@needs_resemblyzer
def test_a_trained_ge2e_run_saves_without_the_encoder_and_reloads_the_same_vectors(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", TINY, f"data.root={ROOT / 'data' / 'speech'}", f"train.out_dir={out}",
                 "train.max_steps=8", "model.speaker.levels=[0]", "model.speaker.dim=16", "model.speaker.encoder=true",
                 "model.speaker.encoder_kind=ge2e", "data.valid_fraction=0.1", "train.valid_every=1000"]) == 0
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        out_weight = f.get_tensor("speaker.encoder.out.weight")
    assert not any("lstm" in k for k in keys) and "speaker.encoder.out.weight" in keys
    model, cfg = load_model(out)
    assert cfg.model.speaker.encoder_kind == "ge2e"
    reference = torch.from_numpy(clip("e05", 11))[None, None]
    expected = torch.nn.functional.linear(ge2e.GE2E.pretrained().embed(reference) * 16.0, out_weight,
                                          model.speaker.encoder.out.bias)
    torch.testing.assert_close(model.speaker(reference), expected, rtol=1e-5, atol=1e-5)
    y = model.convert(torch.from_numpy(clip("e03", 10))[None, None], reference)
    assert y.shape[-1] >= 16000 and torch.isfinite(y).all()


def test_a_missing_resemblyzer_or_another_rate_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="data.sample_rate=16000"):
        GE2ESpeakerEncoder(16, sample_rate=22050)
    with pytest.raises(ValueError, match="encoder_kind='x-vector' is unknown; use one of trained, ge2e"):
        SpeakerConditioner(["a"], 16, encoder=True, encoder_kind="x-vector")
    monkeypatch.setattr(ge2e.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingFileError, match=r"pip install 'audiolvm\[speaker\]'"):
        SpeakerConditioner(["a"], 16, encoder=True, encoder_kind="ge2e")
    SpeakerConditioner(["a"], 16, encoder=True)  # the trained encoder needs nothing installed
