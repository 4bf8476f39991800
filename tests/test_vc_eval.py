"""Voice-conversion evaluation: target choice, counting with stub models, reports, and evaluate-vc."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from audiolvm.builders import load_classifier, split_entries_for
from audiolvm.core.audio import AudioError
from audiolvm.core.seed import derived_rng
from audiolvm.data import Entry, open_corpus
from audiolvm.eval.speaker import utterance_accuracy
from audiolvm.eval.vc import VCResults, evaluate_vc, pick_targets, resemblyzer_encoder
from audiolvm.eval.vc_suite import VCCorpus, VCOptions, evaluate_seen, overlap_note, unseen_voices
from audiolvm.models.classifier import SpeakerClassifier
from audiolvm_pipelines import evaluate_vc as evaluate_vc_cli
from audiolvm_pipelines import train, train_classifier

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "data" / "speech"
NAMES = ["a", "b", "c", "d"]
RATE = 8000


def marker(speaker: str, n: int = 800) -> np.ndarray:
    """A constant wave whose level names the speaker: a stub model's 'voice'."""
    return np.full(n, (NAMES.index(speaker) + 1) / 100, dtype=np.float32)


class MarkerClassifier(nn.Module):
    """Predicts the speaker whose marker level is closest to the wave's mean."""

    def __init__(self) -> None:
        super().__init__()
        self.speakers, self.sample_rate = list(NAMES), RATE
        self.dummy = nn.Parameter(torch.zeros(1))

    def predict(self, audio: torch.Tensor) -> list[str]:
        k = (audio.mean(dim=(1, 2)) * 100).round().long() - 1  # (B,)
        return [self.speakers[int(i)] for i in k.clamp(0, len(NAMES) - 1)]


class StubReader:
    def __init__(self, bad: set[str] = frozenset()) -> None:
        self.bad, self.skipped = bad, []

    def load(self, entry: Entry, sample_rate: int | None = None) -> np.ndarray:
        if entry.utterance in self.bad:
            raise AudioError(entry.path, "cannot decode")
        return marker(entry.speaker)

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(path)


def entries_of(speakers: list[str]) -> list[Entry]:
    return [Entry(f"/x/{s}_{i}.wav", s, f"{s}_{i:03d}", "", 0.1, RATE, 800) for i, s in enumerate(speakers)]


def run_stub(convert, reconstruct=None, sources=("a", "b", "c", "d", "a", "c"), k=2, bad=frozenset(), **kw):  # noqa: ANN001, ANN201
    entries = entries_of(list(sources))
    targets = pick_targets([e.speaker for e in entries], NAMES, k, seed=3)
    res = evaluate_vc(MarkerClassifier(), StubReader(bad), entries, targets, convert, reconstruct, RATE,
                      progress=False, **kw)
    return res, targets


def pipeline(module, *argv: str) -> int:  # noqa: ANN001
    parser = argparse.ArgumentParser()
    module.add_parser(parser)
    return module.run(parser.parse_args([str(a) for a in argv]))


def test_pick_targets_are_distinct_other_speakers_and_seeded() -> None:
    sources = ["a", "b", "c", "a", "d"] * 4
    targets = pick_targets(sources, NAMES, 2, seed=5)
    assert all(len(set(t)) == 2 and s not in t and set(t) <= set(NAMES) for s, t in zip(sources, targets, strict=True))
    assert targets == pick_targets(sources, NAMES, 2, seed=5) != pick_targets(sources, NAMES, 2, seed=6)
    assert pick_targets(sources[:3], NAMES, 2, seed=5) == targets[:3]  # adding items keeps earlier choices
    assert all(s not in t and len(t) == 3 for s, t in zip(sources, pick_targets(sources, NAMES, 3, 0), strict=True))
    with pytest.raises(ValueError, match="1..3"):
        pick_targets(sources, NAMES, 4)


def test_perfect_conversion_has_full_target_accuracy_and_no_leakage() -> None:
    res, targets = run_stub(lambda x, t: torch.from_numpy(marker(t))[None, None], lambda x, s: x)
    acc = res.accuracies()
    assert len(res.conversions) == 12 and [c.target for c in res.conversions] == [t for ts in targets for t in ts]
    assert acc == {"real": 1.0, "reconstruction": 1.0, "converted_target": 1.0, "converted_source": 0.0}


def test_content_scores_are_averaged_over_originals_and_conversions() -> None:
    """The content callable sees the source entry and each wave; originals and conversions average apart."""
    seen: list[tuple[str, int]] = []

    def content(entry: Entry, wave: np.ndarray) -> float:
        seen.append((entry.speaker, len(wave)))
        return 1.0 if len(wave) == 800 else 0.25  # originals are 800 samples, conversions 400

    res, _ = run_stub(lambda x, t: x[..., :400], content=content)
    assert res.content() == {"original": 1.0, "converted": 0.25}
    assert len(seen) == 6 + 12 and "| conversions | 0.250 |" in res.to_markdown()
    assert run_stub(lambda x, t: x)[0].content() is None


def test_identity_conversion_is_pure_leakage() -> None:
    res, _ = run_stub(lambda x, t: x)
    acc = res.accuracies()
    assert acc["converted_target"] == 0.0 and acc["converted_source"] == 1.0 and acc["reconstruction"] is None


def test_partial_conversion_counts_exactly() -> None:
    """Converts only to targets 'b' and 'd', leaves the source otherwise: the rates follow the targets."""
    def convert(x: torch.Tensor, t: str) -> torch.Tensor:
        return torch.from_numpy(marker(t))[None, None] if t in ("b", "d") else x

    def reconstruct(x: torch.Tensor, s: str) -> torch.Tensor:
        return torch.from_numpy(marker("a"))[None, None]  # a decoder that always speaks as 'a'

    res, targets = run_stub(convert, reconstruct, bad={"c_002"})
    kept = [ts for i, ts in enumerate(targets) if i != 2]  # utterance c_002 fails to decode and is skipped
    flat = [t for ts in kept for t in ts]
    expected = sum(t in ("b", "d") for t in flat) / len(flat)
    acc = res.accuracies()
    assert len(res.utterances) == 5 and len(res.conversions) == len(flat) == 10
    assert acc["converted_target"] == pytest.approx(expected) and acc["converted_source"] == pytest.approx(1 - expected)
    assert acc["reconstruction"] == pytest.approx(2 / 5)  # sources a, b, d, a, c: only the two 'a' are right
    assert res.per_target() == {t: float(t in ("b", "d")) for t in sorted(set(flat))}


def test_similarity_uses_reference_centroids() -> None:
    def encoder(wave: np.ndarray, rate: int) -> np.ndarray:  # one-hot of the marker's speaker
        return np.eye(len(NAMES))[NAMES.index(MarkerClassifier().predict(torch.from_numpy(wave)[None, None])[0])]

    refs = {s: [marker(s), marker(s)] for s in NAMES}
    res, _ = run_stub(lambda x, t: torch.from_numpy(marker(t))[None, None] if t != "c" else x,
                      speaker_encoder=encoder, references=refs)
    sim, conv = res.similarity(), res.conversions
    hit = np.mean([c.target != "c" for c in conv])
    assert all((c.sim_target, c.sim_source) == ((1.0, 0.0) if c.target != "c" else (0.0, 1.0)) for c in conv)
    assert sim == pytest.approx({"to_target": hit, "to_source": 1 - hit, "closer_to_target": hit})


class StubVCModel:
    """Converts perfectly (the target's marker) and reconstructs by copying; no pitch path."""

    pitch = None

    def convert(self, x: torch.Tensor, speaker: torch.Tensor, level: int, pitch: str) -> torch.Tensor:
        return torch.from_numpy(marker(NAMES[int(speaker[0])]))[None, None]

    def reconstruct(self, x: torch.Tensor, level: int, speaker: torch.Tensor) -> torch.Tensor:
        return x


def stub_corpus(splits: dict[str, list[str]]) -> VCCorpus:
    """A corpus whose split ``name`` holds one utterance per speaker listed (no phone alignments)."""
    return VCCorpus(lambda name: (StubReader(), entries_of(splits[name])), RATE, "stub corpus")


def test_evaluate_seen_converts_seeded_held_out_utterances_and_notes_the_overlap() -> None:
    corpus = stub_corpus({"valid": ["a", "b", "c", "z", "d", "a", "c"], "train": ["a", "b"]})  # z: unknown
    options = VCOptions(n_utterances=4, targets=2, seed=1, examples=1, references=0)
    known = [e for e in entries_of(["a", "b", "c", "z", "d", "a", "c"]) if e.speaker != "z"]
    chosen = [known[i] for i in sorted(derived_rng(1, 0x7C).permutation(len(known))[:4])]
    res = evaluate_seen(StubVCModel(), MarkerClassifier(), corpus, NAMES, options, classifier_train=chosen[:1])
    assert [u.utterance for u in res.utterances] == [e.utterance for e in chosen]
    assert len(res.conversions) == 8 and all(c.target != c.source for c in res.conversions)
    acc = res.accuracies()
    assert (acc["real"], acc["reconstruction"], acc["converted_target"], acc["converted_source"]) == (1, 1, 1, 0)
    assert res.content() is None and len(res.examples) == 1 + 1 + 2  # the first utterance: real, recon, 2 targets
    assert "--references 0" in res.notes[0] and res.notes[1].startswith("1 of the 4 converted utterances")
    assert overlap_note([], chosen) is None and overlap_note(chosen, chosen).startswith("4 of the 4")
    with pytest.raises(ValueError, match="no held-out utterances of stub corpus"):
        evaluate_seen(StubVCModel(), MarkerClassifier(), stub_corpus({"valid": ["z"]}), NAMES, options)


def test_unseen_voices_are_grouped_sorted_and_need_utterances_left_to_convert() -> None:
    corpus = stub_corpus({"unseen": ["u2", "u1", "u2", "u1", "u1", "u2"]})
    _, voices = unseen_voices(corpus, VCOptions(unseen_voices=1, enroll_clips=[1, 2]))
    assert list(voices) == ["u1"] and [e.utterance for e in voices["u1"]] == ["u1_001", "u1_003", "u1_004"]
    with pytest.raises(ValueError, match="leaves none to convert"):
        unseen_voices(corpus, VCOptions(enroll_clips=[3]))
    with pytest.raises(ValueError, match="at least 1"):
        unseen_voices(corpus, VCOptions(enroll_clips=[0, 1]))


def test_unknown_speakers_are_an_error() -> None:
    entries = entries_of(["a", "e"])
    with pytest.raises(ValueError, match=r"speakers \['e'\] are not among the classifier's"):
        evaluate_vc(MarkerClassifier(), StubReader(), entries, [["b"], ["a"]], lambda x, t: x, None, RATE)


def test_report_markdown_json_and_plot(tmp_path: Path) -> None:
    res, _ = run_stub(lambda x, t: torch.from_numpy(marker(t))[None, None], lambda x, s: x, keep_audio=2)
    res.notes.append("a note")
    data = json.loads(res.write_json(tmp_path / "vc.json").read_text())
    assert data["accuracy"] == res.accuracies() and data["n_conversions"] == len(data["conversions"]) == 12
    md = res.write_markdown(tmp_path / "vc.md").read_text()
    assert "| converted: source (leakage) | source speaker | 0.000 | 12 |" in md and "Note: a note" in md
    assert "| real | true speaker | 1.000 | 6 |" in md and "Chance level: 0.250" in md
    assert res.plot(tmp_path / "vc.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(res.examples) == ["a_000_real", "a_000_reconstruction", *[f"a_000_to_{t}" for t in
                                    [c.target for c in res.conversions[:2]]], "b_001_real", "b_001_reconstruction",
                                    *[f"b_001_to_{c.target}" for c in res.conversions[2:4]]]
    assert VCResults().accuracies()["real"] is None


def test_real_utterances_as_conversions_score_like_the_classifier() -> None:
    """convert() returns a real utterance of the target: target accuracy = the classifier's accuracy on
    exactly those utterances, leakage = how often it names the source on them (any classifier)."""
    torch.manual_seed(0)
    reader = open_corpus(SPEECH)
    entries = reader.entries()
    by_speaker = {e.speaker: e for e in reversed(entries)}  # one real utterance per speaker
    speakers = sorted(by_speaker)
    classifier = SpeakerClassifier(len(speakers), 16000, n_mels=32, channels=(8, 16), speakers=speakers).eval()
    sources = [e for e in entries if e.utterance.endswith(("_005", "_011"))][:8]
    targets = pick_targets([e.speaker for e in sources], speakers, 3, seed=1)

    def convert(x: torch.Tensor, t: str) -> torch.Tensor:
        return torch.from_numpy(reader.load(by_speaker[t], 16000))[None, None]

    res = evaluate_vc(classifier, reader, sources, targets, convert, None, 16000, progress=False)
    used = [by_speaker[t] for ts in targets for t in ts]
    direct = utterance_accuracy(classifier, reader, used)
    acc = res.accuracies()
    assert acc["converted_target"] == pytest.approx(direct.accuracy)
    source_of_each = [s.speaker for s, ts in zip(sources, targets, strict=True) for _ in ts]
    leak = np.mean([p == s for p, s in zip(direct.predicted, source_of_each, strict=True)])
    assert acc["converted_source"] == pytest.approx(leak)
    assert acc["real"] == pytest.approx(utterance_accuracy(classifier, reader, sources).accuracy)


def test_resemblyzer_missing_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # import fails as if not installed
    with caplog.at_level("INFO", logger="audiolvm.eval.vc"):
        assert resemblyzer_encoder() is None
    assert "speaker similarity skipped" in caplog.text


def test_resemblyzer_same_speaker_is_closer_than_other_speakers() -> None:
    pytest.importorskip("resemblyzer", exc_type=ImportError)
    encoder = resemblyzer_encoder()
    assert encoder is not None
    reader = open_corpus(SPEECH)
    waves = {s: [reader.load(e, 16000) for e in reader.entries() if e.speaker == s][:2] for s in ("e01", "e07")}
    emb = {s: [encoder(w, 16000) for w in ws] for s, ws in waves.items()}
    same = float(emb["e01"][0] @ emb["e01"][1])
    assert same > float(emb["e01"][0] @ emb["e07"][0]) and same > float(emb["e01"][1] @ emb["e07"][1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vc")
    tiny, data = ROOT / "configs" / "tiny" / "speech_vqvae.yaml", f"data.root={SPEECH}"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, extra in (("vc", ["model.speaker.levels=[0]"]), ("plain", [])):
            assert pipeline(train, tiny, data, f"train.out_dir={root / name}", "train.max_steps=3", *extra) == 0
        assert pipeline(train_classifier, ROOT / "configs" / "demo" / "speaker_classifier.yaml", data,
                        f"train.out_dir={root / 'cls'}", "train.max_steps=3", "train.progress=false",
                        "data.batch_size=4") == 0
    finally:
        torch.set_num_threads(before)
    return {"vc": root / "vc", "plain": root / "plain", "cls": root / "cls", "root": root}


def test_evaluate_vc_command_writes_reports_and_wavs(runs: dict[str, Path]) -> None:
    out = runs["root"] / "report"
    parser = argparse.ArgumentParser()
    evaluate_vc_cli.add_parser(parser)
    result = evaluate_vc_cli.execute(parser.parse_args([str(a) for a in (
        "--checkpoint", runs["vc"], "--classifier", runs["cls"], "--n-utterances", 4, "--targets", 3, "--examples", 1,
        "--references", 0, "--out", out)]))
    data = json.loads((out / "vc.json").read_text())
    assert data == json.loads(json.dumps(result.to_dict()))  # the command returns what it wrote
    assert data["n_utterances"] == 4 and data["n_conversions"] == 12 and data["similarity"] is None
    assert all(c["target"] != c["source"] for c in data["conversions"])
    _, valid = split_entries_for(load_classifier(runs["cls"])[1], "valid")  # tiny split (0.05) within it
    assert {u["utterance"] for u in data["utterances"]} <= {e.utterance for e, _ in valid}
    assert any("--references 0" in n for n in data["notes"])
    assert (out / "vc.md").is_file() and (out / "vc_accuracy.png").is_file()
    assert len(list((out / "examples").glob("*.wav"))) == 1 + 1 + 3  # real, reconstruction, 3 conversions
    content = data["content"]  # data/speech has alignments: content preservation is scored
    assert 0.0 <= content["converted"] <= 1.0 and 0.0 <= content["original"] <= 1.0


def test_evaluate_vc_rejects_a_model_without_speakers(runs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"not speaker-conditioned \(model.speaker.levels=\[\]"):
        pipeline(evaluate_vc_cli, "--checkpoint", runs["plain"], "--classifier", runs["cls"])


def test_conversion_pitch_is_scored_against_the_target_and_source_medians() -> None:
    """A stub whose conversions speak at the target's median F0 in half the cases and at the source's in the
    other half: distances are 0 and the octave between the voices, and half are within 100 cents."""
    speaker_f0 = {"a": 100.0, "b": 200.0, "c": 100.0, "d": 200.0}
    calls = []

    def convert(x: torch.Tensor, target: str) -> torch.Tensor:
        calls.append(target)
        return torch.full((1, 1, 10), speaker_f0[target] if len(calls) % 2 else 0.0)

    def median_f0(wave: np.ndarray) -> float:
        return float(wave[0]) if wave[0] > 0 else float("nan")  # the stub's wave carries its F0; 0 = unvoiced

    res, targets = run_stub(convert, sources=("a", "b"), k=3, median_f0=median_f0, speaker_f0=speaker_f0)
    scored = [r for r in res.conversions if r.f0_cents_to_target is not None and np.isfinite(r.f0_cents_to_target)]
    assert len(scored) == 3  # the unvoiced conversions are left out
    for r in scored:
        assert r.f0_cents_to_target == pytest.approx(0.0)
        expected = 1200 * np.log2(speaker_f0[r.target] / speaker_f0[r.source])
        assert r.f0_cents_to_source == pytest.approx(expected)
    pitch = res.pitch()
    assert pitch["to_target_cents"] == pytest.approx(0.0) and pitch["within_100_cents"] == 1.0
    assert "median distance to the target's" in res.to_markdown() and res.summary()["pitch"] == pitch
