"""Speaker-conditioned decoding: FiLM / concat start as the identity, the speaker embedding's effect in
a trained model, the speaker encoder path, and the `audiolvm convert` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiolvm.builders import load_model
from audiolvm.core.audio import load_audio
from audiolvm.models.speaker import SpeakerConditioner
from audiolvm.nn.conv1d import ConvDecoder1d
from audiolvm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")
DATA = f"data.root={ROOT / 'data' / 'speech'}"
SPEECH = ROOT / "data" / "speech" / "wav48_silence_trimmed"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny speaker-conditioned VQ-VAE with a speaker encoder, trained for a few dozen steps."""
    out = tmp_path_factory.mktemp("vc") / "run"
    assert main(["train", TINY, DATA, f"train.out_dir={out}", "train.max_steps=40", "train.lr=3e-3",
                 "model.speaker.levels=[0]", "model.speaker.dim=16", "model.speaker.encoder=true",
                 "data.valid_fraction=0.1"]) == 0
    return out


def utterance(speaker: str = "e03", n: int = 10) -> torch.Tensor:
    wave, _ = load_audio(SPEECH / speaker / f"{speaker}_{n:03d}_mic1.flac", sample_rate=16000)
    return torch.from_numpy(wave[:8000])[None, None]  # (1, 1, 8000)


@pytest.mark.parametrize("mode", ["film", "concat"])
def test_conditioning_starts_as_the_identity(mode: str) -> None:
    """At initialisation a conditioned decoder computes what the unconditioned one with the same weights
    does, whatever the speaker vector; after a perturbation of its conditioning weights it no longer does."""
    torch.manual_seed(0)
    plain = ConvDecoder1d(8, 1, 16, [2, 4], depth=1)
    cond = ConvDecoder1d(8, 1, 16, [2, 4], depth=1, cond_dim=5, cond_mode=mode)
    cond.net.load_state_dict(plain.net.state_dict())
    z, c = torch.randn(3, 8, 20), 3.0 * torch.randn(3, 5)
    torch.testing.assert_close(cond(z, c), plain(z), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        for p in cond.cond.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert not torch.allclose(cond(z, c), plain(z), atol=1e-4)
    with pytest.raises(ValueError, match="conditioned"):
        cond(z)


def test_swapping_the_speaker_changes_the_output_and_keeping_it_reproduces_the_reconstruction(
        vc_run: Path) -> None:
    model, cfg = load_model(vc_run)
    names = cfg.model.speaker.names
    assert names == sorted(f"e{i:02d}" for i in range(1, 13)) and model.speaker_names == names
    x = utterance("e03")
    own, other = model.speaker.ids(["e03"]), model.speaker.ids(["e09"])
    recon = model.reconstruct(x, level=0, speaker=own)
    torch.testing.assert_close(model.convert(x, own), recon, rtol=0, atol=0)
    torch.testing.assert_close(model(x, own).levels[0].recon, recon, rtol=0, atol=0)
    # through the codes: equal up to the straight-through estimator's float rounding
    torch.testing.assert_close(model.decode(model.encode(x), speaker=own, length=x.shape[-1]), recon,
                               rtol=0, atol=1e-6)
    swapped = model.convert(x, other)
    change = (swapped - recon).abs().mean() / recon.abs().mean()
    assert change > 0.01, f"the speaker embedding barely changes the output ({float(change):.4f})"
    with pytest.raises(ValueError, match="speaker-conditioned"):
        model.reconstruct(x, level=0)
    with pytest.raises(KeyError, match="e03"):
        model.speaker.ids(["nobody"])


def test_speaker_encoder_maps_reference_audio_and_is_trained_toward_the_table(vc_run: Path) -> None:
    model, _ = load_model(vc_run)
    x = utterance("e03")
    vec = model.speaker(utterance("e05", 11))
    assert vec.shape == (1, 16)
    by_ref = model.convert(x, utterance("e05", 11))
    torch.testing.assert_close(by_ref, model.convert(x, vec), rtol=0, atol=0)  # audio -> vector -> decoder
    # trained jointly: the encoder's vector of a speaker's clip is nearer that speaker's table row than a
    # freshly initialised encoder's is (the matching loss has pulled it toward the table)
    table = model.speaker.table.weight.detach()  # (S, dim)
    ids = model.speaker.ids(["e01", "e05", "e09"])
    clips = [utterance(s, 11) for s in ("e01", "e05", "e09")]
    trained = torch.stack([(model.speaker(c)[0] - table[i]).pow(2).mean() for c, i in zip(clips, ids, strict=True)])
    torch.manual_seed(1)
    fresh = SpeakerConditioner(model.speaker_names, 16, encoder=True).eval()
    untrained = torch.stack([(fresh.encoder(c)[0] - table[i]).pow(2).mean() for c, i in zip(clips, ids, strict=True)])
    assert trained.mean() < untrained.mean()


def test_training_logs_the_speaker_encoder_term(vc_run: Path) -> None:
    import csv

    with open(vc_run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    values = [float(r["value"]) for r in rows if r["name"] == "speaker/encoder"]
    assert values and all(np.isfinite(values))


def test_convert_command_file_folder_and_errors(vc_run: Path, tmp_path: Path) -> None:
    src = SPEECH / "e02" / "e02_010_mic1.flac"
    out = tmp_path / "one.wav"
    assert main(["convert", "--checkpoint", str(vc_run), "--source", str(src), "--target-speaker", "e07",
                 "--output", str(out)]) == 0
    wave, rate = load_audio(out)
    assert rate == 16000 and len(wave) == len(load_audio(src)[0])
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("e02_010_mic1.flac", "e02_011_mic1.flac"):
        (folder / name).write_bytes((SPEECH / "e02" / name).read_bytes())
    (folder / "broken.wav").write_bytes(b"")
    assert main(["convert", "--checkpoint", str(vc_run), "--source", str(folder), "--reference",
                 str(SPEECH / "e11" / "e11_010_mic1.flac"), "--output", str(tmp_path / "conv")]) == 0
    assert sorted(p.name for p in (tmp_path / "conv").iterdir()) == ["e02_010_mic1.wav", "e02_011_mic1.wav"]
    # the converted file is what the library's convert gives
    model, _ = load_model(vc_run)
    x = torch.from_numpy(load_audio(src, sample_rate=16000)[0])[None, None]
    want = model.convert(x, model.speaker.ids(["e07"]))[0, 0].numpy()
    np.testing.assert_allclose(wave, want, atol=2e-3)
    assert main(["convert", "--checkpoint", str(vc_run), "--source", str(src), "--target-speaker", "nobody",
                 "--output", str(tmp_path / "x.wav")]) == 2
    cfg = json.loads((vc_run / "config.json").read_text())
    assert cfg["model"]["speaker"]["levels"] == [0]
