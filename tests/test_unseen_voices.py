"""Content codes without the voice, and voices the model never heard (issue 16): gradient reversal and the speaker
adversary, instance-normalised and log-mel encoders, whole speakers held out of training, few-shot enrolment
(`audiolvm enroll`) and `evaluate-vc --unseen`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audiolvm.builders import (
    build_corpus,
    build_model,
    build_reconstruction_objective,
    enroll_voice,
    load_model,
    split_entries_for,
)
from audiolvm.config import ConfigError, DataConfig, ExperimentConfig, ModelConfig, SpeakerConfig, VQConfig
from audiolvm.core.audio import load_audio
from audiolvm.core.errors import UsageError
from audiolvm.models.speaker import SpeakerAdversary, soft_code_histogram
from audiolvm.nn.conv1d import MelEncoder1d
from audiolvm.nn.reversal import reverse_gradient
from audiolvm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")
SPEECH = ROOT / "data" / "speech"
DATA = f"data.root={SPEECH}"
NAMES = [f"e{i:02d}" for i in range(1, 13)]


pytestmark = pytest.mark.usefixtures("one_thread")


def clip(speaker: str, n: int) -> torch.Tensor:
    path = SPEECH / "wav48_silence_trimmed" / speaker / f"{speaker}_{n:03d}_mic1.flac"
    return torch.from_numpy(load_audio(path, sample_rate=16000)[0])


def small(**kw) -> ModelConfig:  # noqa: ANN003
    return ModelConfig(strides=[[4, 4]], width=8, depth=1, vq=VQConfig(num_codes=[16], dim=8), **kw)


# ------------------------------------------------------------------------------------------ gradient reversal
def test_gradient_reversal_flips_the_features_gradient_and_keeps_the_classifiers() -> None:
    torch.manual_seed(0)
    features = torch.randn(3, 8, 20)
    ids = torch.tensor([0, 2, 1])
    adversary = SpeakerAdversary(8, 4, width=16, scale=0.7)

    def grads(reverse: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = features.clone().requires_grad_(True)
        adversary.zero_grad()
        if reverse:
            loss, _ = adversary(z, ids)
        else:  # the same classifier without the reversal
            logits = adversary.net(z)
            loss = torch.nn.functional.cross_entropy(logits, ids[:, None].expand(-1, logits.shape[-1]))
        loss.backward()
        return z.grad, [p.grad.clone() for p in adversary.parameters()]

    (g_rev, p_rev), (g_plain, p_plain) = grads(True), grads(False)
    torch.testing.assert_close(g_rev, -0.7 * g_plain)
    assert g_plain.abs().sum() > 0
    for a, b in zip(p_rev, p_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    x = torch.randn(5)
    assert torch.equal(reverse_gradient(x, 2.0), x)
    with pytest.raises(ValueError, match="scale"):
        reverse_gradient(x, -1.0)


def test_pooled_adversary_reads_one_prediction_per_item_from_the_mean_logits() -> None:
    torch.manual_seed(0)
    z, ids = torch.randn(4, 8, 30), torch.tensor([0, 1, 2, 1])
    adversary = SpeakerAdversary(8, 3, width=16, pool=True)
    loss, accuracy = adversary(z, ids)
    logits = adversary.net(z).mean(-1)  # (B, S)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, ids))
    assert float(accuracy) == float((logits.argmax(1) == ids).float().mean())
    frame_wise = SpeakerAdversary(8, 3, width=16)
    frame_wise.load_state_dict(adversary.state_dict())
    assert not torch.allclose(frame_wise(z, ids)[0], loss)  # per frame is another loss


def test_histogram_adversary_reads_a_bag_of_codes_and_reverses_its_gradient() -> None:
    torch.manual_seed(0)
    book = torch.randn(16, 8)
    near = torch.randint(0, 16, (3, 25))
    features = (book[near] + 0.05 * torch.randn(3, 25, 8)).movedim(-1, 1)  # (B, D, N), each frame near a code
    ids = torch.tensor([0, 2, 1])
    hist = soft_code_histogram(features, book)
    torch.testing.assert_close(hist.sum(1), torch.ones(3))
    # each frame weighs its nearest code most: an item whose frames all sit on one code peaks there
    on = book[torch.tensor([3, 7, 11])][:, :, None].expand(-1, -1, 10)  # (3, D, 10)
    assert soft_code_histogram(on, book).argmax(1).tolist() == [3, 7, 11]
    # a bag of codes: the order of the frames does not matter
    torch.testing.assert_close(soft_code_histogram(features[..., torch.randperm(25)], book), hist)
    adversary = SpeakerAdversary(8, 4, scale=0.5, num_codes=16)

    def grads(reverse: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = features.clone().requires_grad_(True)
        adversary.zero_grad()
        if reverse:
            loss, _ = adversary(z, ids, book)
        else:  # the same linear classifier on the same histogram, without the reversal
            logits = adversary.net(soft_code_histogram(z, book)[..., None] * 16)[..., 0]
            loss = torch.nn.functional.cross_entropy(logits, ids)
        loss.backward()
        return z.grad, [p.grad.clone() for p in adversary.parameters()]

    (g_rev, p_rev), (g_plain, p_plain) = grads(True), grads(False)
    assert g_plain.abs().sum() > 0
    torch.testing.assert_close(g_rev, -0.5 * g_plain)
    for a, b in zip(p_rev, p_plain, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(UsageError, match="codebook"):
        adversary(features, ids)


def test_the_model_trains_its_adversary_on_training_ids_and_the_config_is_checked() -> None:
    cfg = small(speaker=SpeakerConfig(levels=[0], dim=8, names=NAMES[:4], adversary=1.0, adversary_width=16))
    model = build_model(cfg).train()
    out = model(torch.randn(2, 1, 1600) * 0.1, speaker=torch.tensor([0, 3]))
    assert out.losses["speaker/adversary"].requires_grad
    assert 0.0 <= float(out.metrics["speaker/adversary_acc"]) <= 1.0
    assert "speaker/adversary" not in model(torch.randn(2, 1, 1600), speaker=torch.randn(2, 8)).losses  # vectors
    with pytest.raises(ConfigError, match="model.speaker.adversary"):
        build_model(small(speaker=SpeakerConfig(levels=[], adversary=1.0)))
    hist = small(speaker=SpeakerConfig(levels=[0], dim=8, names=NAMES[:4], adversary=1.0, adversary_histogram=True))
    model = build_model(hist).train()
    ids = torch.tensor([0, 3])
    out = model(torch.randn(2, 1, 1600) * 0.1, speaker=ids)
    assert out.losses["speaker/adversary"].requires_grad
    # the term is the histogram adversary on the speaker level's quantized frames and that level's codebook
    assert model.adversary is not None and model.adversary.histogram
    book = model.levels[0].bottleneck.embed(torch.arange(16)[None])[0].T  # (K, D)
    torch.testing.assert_close(out.losses["speaker/adversary"],
                               model.adversary(out.levels[0].bottleneck.z, ids, book)[0])
    for bad in (SpeakerConfig(levels=[0], dim=8, names=NAMES[:4], adversary_histogram=True),  # no adversary
                SpeakerConfig(levels=[0], dim=8, names=NAMES[:4], adversary=1.0, adversary_histogram=True,
                              adversary_pool=True)):
        with pytest.raises(ConfigError, match="adversary_histogram"):
            build_model(small(speaker=bad))


# ------------------------------------------------------------------------------------------ encoders
def test_mel_and_instance_norm_encoders_give_the_code_rate_and_normalised_features() -> None:
    enc = MelEncoder1d(8, 16, hop=256, depth=1, frame_hop=64)
    assert enc(torch.randn(2, 1, 256 * 7)).shape == (2, 8, 7)
    with pytest.raises(ValueError, match="divide"):
        MelEncoder1d(8, 16, hop=256, depth=1, frame_hop=48)
    torch.manual_seed(0)
    x = torch.randn(3, 1, 1600)
    wave = build_model(small()).level_features(x)[2].shape
    for kw in ({"encoder_input": "mel", "mel_hop": 4}, {"content_norm": "instance"},
               {"encoder_input": "mel", "mel_hop": 8, "content_norm": "instance"}):
        model = build_model(small(**kw))
        pre, _, codes = model.level_features(x)
        assert codes.shape == wave  # same frames as the waveform encoder
        if kw.get("content_norm") == "instance":  # every item's channels: zero mean, unit variance over time
            torch.testing.assert_close(pre.mean(-1), torch.zeros(pre.shape[:2]), atol=1e-5, rtol=0)
            torch.testing.assert_close(pre.var(-1, unbiased=False), torch.ones(pre.shape[:2]), atol=1e-2, rtol=0)
    for bad in ({"encoder_input": "mfcc"}, {"content_norm": "batch"}, {"encoder_input": "mel", "mel_hop": 5}):
        with pytest.raises(ConfigError):
            build_model(small(**bad))


# ------------------------------------------------------------------------------------------ held-out speakers
def test_unseen_speakers_are_whole_speakers_out_of_both_splits_chosen_by_seed() -> None:
    base = DataConfig(root=str(SPEECH), valid_fraction=0.15)
    _, train0, valid0 = build_corpus(base)
    cfg = DataConfig(root=str(SPEECH), valid_fraction=0.15, unseen_speakers=3)
    _, train, valid = build_corpus(cfg)
    _, _, unseen = build_corpus(cfg, unseen=True)
    held = {e.speaker for e in unseen}
    assert len(held) == 3 and not held & {e.speaker for e in train + valid}
    assert len(unseen) == 3 * 18  # every utterance of the held-out speakers
    # the other speakers keep exactly the split they had without held-out speakers
    assert [e.path for e in train] == [e.path for e in train0 if e.speaker not in held]
    assert [e.path for e in valid] == [e.path for e in valid0 if e.speaker not in held]
    other = {e.speaker for e in build_corpus(DataConfig(root=str(SPEECH), unseen_speakers=3, split_seed=5),
                                             unseen=True)[2]}
    assert other != held  # another seed, other voices (for this corpus and these seeds)
    exp = ExperimentConfig(data=cfg)
    assert {e.speaker for e, _ in split_entries_for(exp, "unseen")[1]} == held
    with pytest.raises(ConfigError, match="unseen_speakers"):
        split_entries_for(ExperimentConfig(data=base), "unseen")
    with pytest.raises(ConfigError, match="at least two must remain"):
        build_corpus(DataConfig(root=str(SPEECH), unseen_speakers=11))


# ------------------------------------------------------------------------------------------ enrolment
@pytest.fixture(scope="module")
def vc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny speaker-conditioned VQ-VAE trained without two of the twelve voices."""
    out = tmp_path_factory.mktemp("unseen") / "run"
    assert main(["train", TINY, DATA, f"train.out_dir={out}", "train.max_steps=120", "train.lr=3e-3",
                 "model.speaker.levels=[0]", "model.speaker.dim=16", "model.speaker.encoder=true",
                 "data.valid_fraction=0.1", "data.unseen_speakers=2", "train.valid_every=1000",
                 "train.ckpt_every=1000"]) == 0
    return out


def test_enrolment_changes_only_the_new_row_and_generalises_to_the_speakers_other_clips(vc_run: Path) -> None:
    model, cfg = load_model(vc_run)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    speaker = model.speaker_names[3]
    result = enroll_voice(model, cfg, "copy", [clip(speaker, n) for n in range(5, 10)], steps=150, seed=0)
    after = model.state_dict()
    assert model.speaker_names[-1] == "copy" and set(after) == set(before)
    for key, value in before.items():
        if key == "speaker.table.weight":
            assert torch.equal(after[key][:-1], value)
            assert torch.equal(after[key][-1], result.vector)
        else:
            assert torch.equal(after[key], value), key
    assert result.last_loss < result.first_loss
    # It fits the voice, not the five clips: on four other clips of the speaker it reconstructs better than the
    # vector the enrolment started from (the speaker encoder's) and better than every trained row, the speaker's
    # own included (a 120-step model's table rows are too close to each other to tell the nearest one reliably)
    objective = build_reconstruction_objective(cfg, cfg.loss.weights)
    others = [clip(speaker, n)[None, None] for n in range(10, 14)]  # (1, 1, T) each

    def held_out_loss(vector: torch.Tensor) -> float:
        total = 0.0
        for x in others:
            recon = model.reconstruct(x, 0, speaker=vector[None])[..., : x.shape[-1]]
            total += float(objective.weighted(objective.recon_terms(recon, x)))
        return total / len(others)

    with torch.no_grad():
        start = torch.stack([model.speaker(clip(speaker, n)[None, None])[0] for n in range(5, 10)]).mean(0)
    enrolled = held_out_loss(result.vector)
    assert enrolled < held_out_loss(start)
    assert enrolled < min(held_out_loss(row) for row in before["speaker.table.weight"])


def test_enroll_command_writes_a_run_that_converts_to_the_new_voice(vc_run: Path, tmp_path: Path) -> None:
    unseen = sorted({e.speaker for e, _ in split_entries_for(load_model(vc_run)[1], "unseen")[1]})
    clips = [str(SPEECH / "wav48_silence_trimmed" / unseen[0] / f"{unseen[0]}_00{n}_mic1.flac") for n in (1, 2)]
    out = tmp_path / "enrolled"
    assert main(["enroll", "--checkpoint", str(vc_run), "--speaker", "newvoice", "--clips", *clips,
                 "--out", str(out), "--steps", "20"]) == 0
    record = json.loads((out / "enroll.json").read_text())
    assert record["steps"] == 20 and record["clips"] == clips
    model, cfg = load_model(out)
    assert cfg.model.speaker.names[-1] == "newvoice" and model.speaker_names == cfg.model.speaker.names
    src = SPEECH / "wav48_silence_trimmed" / "e02" / "e02_010_mic1.flac"
    assert main(["convert", "--checkpoint", str(out), "--source", str(src), "--target-speaker", "newvoice",
                 "--output", str(tmp_path / "x.wav")]) == 0
    original, _ = load_model(vc_run)
    assert len(original.speaker_names) == len(model.speaker_names) - 1  # the original run is untouched
    # a taken name, and a missing clip, are one-line errors (exit 2) before any fitting
    assert main(["enroll", "--checkpoint", str(vc_run), "--speaker", original.speaker_names[0], "--clips",
                 *clips]) == 2
    assert main(["enroll", "--checkpoint", str(vc_run), "--speaker", "x", "--clips", str(tmp_path / "no.wav")]) == 2


def test_evaluate_vc_unseen_reports_reference_and_enrolled_conversions(vc_run: Path, tmp_path: Path) -> None:
    cls = tmp_path / "cls"
    assert main(["train-classifier", str(ROOT / "configs" / "demo" / "speaker_classifier.yaml"), DATA,
                 f"train.out_dir={cls}", "train.max_steps=3", "train.progress=false", "data.batch_size=4"]) == 0
    out = tmp_path / "vc"
    assert main(["evaluate-vc", "--checkpoint", str(vc_run), "--classifier", str(cls), "--unseen",
                 "--unseen-voices", "1", "--enroll-clips", "1", "2", "--enroll-seconds", "1", "--n-utterances", "4",
                 "--targets", "1", "--references", "0", "--out", str(out)]) == 0
    summary = json.loads((out / "unseen.json").read_text())
    (voice,) = summary["voices"]
    runs = {k: v for k, v in summary.items() if k.startswith(("to unseen", "from unseen"))}
    assert len(runs) == 4  # reference clip, enrolment on 1 and on 2 clips, and the reverse direction
    for title, res in runs.items():
        assert res["n_conversions"] > 0
        targets = {c["target"] for c in res["conversions"]}
        sources = {c["source"] for c in res["conversions"]}
        assert targets == {voice} if title.startswith("to") else sources == {voice}
    assert [(e["speaker"], e["seconds_of_audio"] > 0) for e in summary["enrolment"]] == [(voice, True)] * 2
    text = (out / "unseen.md").read_text()
    assert "after enrolment on 1 clip\n" in text and "after enrolment on 2 clips" in text
