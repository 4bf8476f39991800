"""Corpus readers, the manifest cache, open_corpus detection, the HF adapter and splits."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolvm.core.audio as core_audio
import audiolvm.data.manifest as manifest
from audiolvm.data import (
    CorpusError,
    Entry,
    FolderReader,
    HFDatasetReader,
    LibriSpeechReader,
    VCTKReader,
    open_corpus,
    split_entries,
)
from tests.fixtures_audio import (
    LIBRI,
    VCTK,
    corrupt_in_place,
    make_folder_with_bad_files,
    make_librispeech,
    make_vctk,
    write,
)

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def probe_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every header probe (``audio_info`` call) made by the manifest scan."""
    calls: list[str] = []
    real = core_audio.audio_info

    def counting(path: str | Path) -> core_audio.AudioInfo:
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(core_audio, "audio_info", counting)
    return calls


def test_vctk_entries_match_fixture(tmp_path: Path) -> None:
    reader = VCTKReader(make_vctk(tmp_path))
    entries = reader.entries()
    assert [e.utterance for e in entries] == sorted(VCTK)
    for e in entries:
        rel, frames, rate, _, text = VCTK[e.utterance]
        assert e.speaker == rel.split("/")[0]
        assert e.text == (text or "")  # p226_002 has no transcript: empty text, not an error
        assert (e.frames, e.sample_rate) == (frames, rate)
        assert e.duration == pytest.approx(frames / rate)
        assert "mic2" not in e.path
    assert not reader.skipped


def test_vctk_iteration_downmixes_and_resamples(tmp_path: Path) -> None:
    utts = list(VCTKReader(make_vctk(tmp_path), sample_rate=16000))
    assert len(utts) == len(VCTK)
    for u in utts:
        _, frames, rate, _, _ = VCTK[u.utterance]
        assert u.sample_rate == 16000 and u.wave.ndim == 1 and u.wave.dtype == np.float32
        assert abs(len(u.wave) - frames * 16000 / rate) <= 1


def test_librispeech_entries_and_split_filter(tmp_path: Path) -> None:
    base = make_librispeech(tmp_path)
    entries = LibriSpeechReader(base).entries()
    assert {e.utterance: (e.speaker, e.text, e.frames) for e in entries} == {
        utt: (utt.split("-")[0], text, frames) for utt, (_, frames, text) in LIBRI.items()
    }
    dev = LibriSpeechReader(base, splits=["dev-clean"]).entries()
    assert [e.utterance for e in dev] == ["84-121123-0000"]
    single = LibriSpeechReader(base / "train-clean-100").entries()  # root may be one split folder
    assert {e.speaker for e in single} == {"19", "26"}
    with pytest.raises(CorpusError, match="test-other"):
        LibriSpeechReader(base, splits=["test-other"])


def test_folder_bad_files_are_skipped_and_counted(tmp_path: Path) -> None:
    reader = FolderReader(make_folder_with_bad_files(tmp_path))
    entries = reader.entries()
    assert {e.utterance: (e.speaker, e.text) for e in entries} == {
        "spk/good": ("spk", "hello there"),
        "top": ("unknown", ""),
    }
    reasons = dict((Path(p).name, r) for p, r in reader.skipped_files)
    assert set(reasons) == {"corrupt.flac", "empty.wav", "nan.wav"}
    assert reasons["nan.wav"].startswith("non-finite samples") and "empty file" in reasons["empty.wav"]
    assert reader.skipped == {"unreadable by soundfile": 1, "0 bytes": 1, "non-finite samples": 1}
    assert len(list(reader)) == 2 and sum(reader.skipped.values()) == 3  # iteration recounts nothing


def test_bad_names_links_and_rate_headers_are_named_skips(tmp_path: Path) -> None:
    """A non-UTF-8 file name, a dangling symlink and impossible sample-rate headers (1 Hz, 2 GHz) used to
    abort the scan or poison training; each is now a counted skip that names the file, and the scan goes on."""
    write(tmp_path / "good.wav", 1600, 16000)
    sf.write(str(tmp_path / "one_hz.wav"), np.full(100, 0.1, np.float32), 1)
    sf.write(str(tmp_path / "two_ghz.wav"), np.full(100, 0.1, np.float32), 2_000_000_000)
    os.symlink(tmp_path / "missing.wav", tmp_path / "dangling.wav")
    latin1 = os.path.join(os.fsencode(tmp_path), "caf\xe9.wav".encode("latin-1"))  # not valid UTF-8
    try:
        with open(latin1, "wb") as f:
            f.write((tmp_path / "good.wav").read_bytes())
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 file names")
    reader = FolderReader(tmp_path)
    assert [e.utterance for e in reader.entries()] == ["good"]
    reasons = {Path(p).name: r for p, r in reader.skipped_files}
    assert reasons["dangling.wav"].startswith("dangling link")
    assert reasons["one_hz.wav"].startswith("sample rate outside") and "1 Hz" in reasons["one_hz.wav"]
    assert "2000000000 Hz" in reasons["two_ghz.wav"]
    assert [r for n, r in reasons.items() if n.startswith("caf")] == ["file name is not valid UTF-8 (rename the file)"]
    assert sum(reader.skipped.values()) == 4


def test_files_broken_after_scan_are_skipped_while_iterating(
    tmp_path: Path, probe_counter: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "a" / "float.wav", 1600, 16000, subtype="FLOAT")
    write(tmp_path / "a" / "pcm.flac", 1600, 16000, seed=3)
    write(tmp_path / "b" / "ok.wav", 1600, 16000, seed=4)
    assert len(FolderReader(tmp_path).entries()) == 3
    corrupt_in_place(tmp_path / "a" / "float.wav", nan=True)
    corrupt_in_place(tmp_path / "a" / "pcm.flac")
    reader = FolderReader(tmp_path)
    assert len(reader.entries()) == 3 and len(probe_counter) == 3  # manifest reused: not re-probed
    assert [u.utterance for u in reader] == ["b/ok"]
    assert reader.skipped == {"non-finite samples": 1, "unreadable by soundfile": 1}
    assert "pcm.flac" in caplog.text and "non-finite" in caplog.text


def test_manifest_is_reused_and_invalidated(tmp_path: Path, probe_counter: list[str]) -> None:
    root = make_folder_with_bad_files(tmp_path)
    first = FolderReader(root).entries()
    n_files = len(probe_counter)  # the 0-byte file is rejected before the header probe
    assert n_files == 4 and (root / ".audiolvm_manifest.folder.jsonl").is_file()
    again = FolderReader(root)
    assert again.entries() == first and len(probe_counter) == n_files  # bad files not re-probed either
    assert sum(again.skipped.values()) == 3
    good = root / "spk" / "good.wav"
    os.utime(good, ns=(good.stat().st_atime_ns, good.stat().st_mtime_ns + 10**9))
    FolderReader(root).entries()
    assert len(probe_counter) == 2 * n_files
    write(root / "new.wav", 800, 16000)
    assert len(FolderReader(root).entries()) == 3 and len(probe_counter) == 3 * n_files + 1


def test_manifest_falls_back_to_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe_counter: list[str]
) -> None:
    root = make_vctk(tmp_path / "corpus")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_write = manifest.write_manifest

    def read_only_root(path: Path, *args: object) -> None:
        if path.parent == root:
            raise PermissionError(f"{path}: read-only file system")
        return real_write(path, *args)

    monkeypatch.setattr(manifest, "write_manifest", read_only_root)
    VCTKReader(root).entries()
    assert not list(root.glob(".audiolvm_manifest*"))
    assert len(list((tmp_path / "cache" / "audiolvm").glob("*.jsonl"))) == 1
    VCTKReader(root).entries()
    assert len(probe_counter) == len(VCTK)


def test_open_corpus_detects_each_layout(tmp_path: Path) -> None:
    assert isinstance(open_corpus(make_vctk(tmp_path / "vctk")), VCTKReader)
    libri = make_librispeech(tmp_path / "libri")
    assert isinstance(open_corpus(libri), LibriSpeechReader)
    assert isinstance(open_corpus(libri / "dev-clean"), LibriSpeechReader)
    assert isinstance(open_corpus(make_folder_with_bad_files(tmp_path / "f")), FolderReader)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(CorpusError, match=r"empty: no audio files found \(looked for .*\.flac.*--data"):
        open_corpus(tmp_path / "empty")
    with pytest.raises(CorpusError, match="not a folder"):
        open_corpus(tmp_path / "missing")


def _flac_bytes(frames: int, rate: int, seed: int) -> bytes:
    buf = io.BytesIO()
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, frames).astype(np.float32)
    sf.write(buf, wave, rate, format="FLAC")
    return buf.getvalue()


def test_hf_dataset_round_trip() -> None:
    from datasets import Audio, ClassLabel, Dataset

    rows = [_flac_bytes(1600, 16000, 0), _flac_bytes(2205, 22050, 1), b"not audio at all"]
    ds = Dataset.from_dict(
        {
            "audio": [{"bytes": b, "path": None} for b in rows],
            "speaker": [0, 1, 1],
            "text": ["hi", "yo", "bad"],
            "id": ["u0", "u1", "u2"],
        }
    )
    # Like a hub dataset: a decoding Audio column (encoding rows through it would need torchcodec).
    ds = ds.cast_column("audio", Audio()).cast_column("speaker", ClassLabel(names=["alice", "bob"]))
    reader = HFDatasetReader(
        ds, speaker_column="speaker", text_column="text", id_column="id", sample_rate=16000
    )
    entries = reader.entries()
    assert [(e.path, e.speaker, e.utterance, e.text, e.frames, e.sample_rate) for e in entries] == [
        ("hf://0", "alice", "u0", "hi", 1600, 16000),
        ("hf://1", "bob", "u1", "yo", 2205, 22050),
    ]
    assert reader.skipped_files[0][0] == "hf://2"
    expected, _ = sf.read(io.BytesIO(rows[0]), dtype="float32")
    np.testing.assert_array_equal(reader.load_window(entries[0], 100, 50), expected[100:150])
    utts = list(reader)
    assert [len(u.wave) for u in utts] == [1600, 1600] and utts[1].sample_rate == 16000
    with pytest.raises(CorpusError, match="field speaker_column"):
        HFDatasetReader(ds, speaker_column="spk")


def _entries(n_speakers: int, n_utts: int) -> list[Entry]:
    return [
        Entry(f"/c/s{s}/{u}.wav", f"s{s}", f"s{s}_{u:03d}", "", 1.0, 16000, 16000)
        for s in range(n_speakers)
        for u in range(n_utts)
    ]


def test_speaker_split_is_disjoint_and_deterministic() -> None:
    entries = _entries(10, 4)
    train, valid = split_entries(entries, 0.2, by="speaker", seed=0)
    train_spk, valid_spk = {e.speaker for e in train}, {e.speaker for e in valid}
    assert len(valid_spk) == 2 and not train_spk & valid_spk and len(train) + len(valid) == len(entries)
    assert split_entries(entries, 0.2, by="speaker", seed=0) == (train, valid)
    assert split_entries(entries, 0.2, by="speaker", seed=1)[1] != valid
    _, tiny = split_entries(_entries(2, 3), 0.01, by="speaker")
    assert len({e.speaker for e in tiny}) == 1  # at least one valid speaker


def test_utterance_split_keeps_every_speaker_in_train() -> None:
    entries = _entries(6, 10)
    train, valid = split_entries(entries, 0.3, by="utterance", seed=0)
    assert {e.speaker for e in train} == {e.speaker for e in entries}
    assert set(train).isdisjoint(valid) and len(train) + len(valid) == len(entries)
    assert 6 <= len(valid) <= 30
    assert split_entries(list(reversed(entries)), 0.3, seed=0)[1] == list(reversed(valid))  # order-free
    assert split_entries(entries, 0.3, seed=1)[1] != valid
    _, one = split_entries(_entries(3, 2), 0.01)
    assert len(one) == 1  # at least one valid utterance overall
    singles = _entries(5, 1)
    assert split_entries(singles, 0.9) == (singles, [])  # a speaker's only utterance stays in train
    with pytest.raises(ValueError, match="by='utterance' or by='speaker'"):
        split_entries(entries, 0.1, by="chapter")
