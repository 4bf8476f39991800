"""The reader registry (``audiolvm.data.readers.READERS``), layout detection, and the data package's structure:
no import side effects, no import circle, and the numbers (manifest signature, splits) pinned to before the
issue 17 split of ``manifest.py``."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import audiolvm.data as data
from audiolvm.core.errors import UsageError
from audiolvm.data import (
    READERS,
    CorpusError,
    Entry,
    FileCorpusReader,
    FolderReader,
    LibriSpeechReader,
    MusicCorpusReader,
    VCTKReader,
    detect_kind,
    iter_audio,
    open_corpus,
    split_entries,
    unseen_speakers,
)
from audiolvm.data.manifest import cache_candidates, file_signature
from tests.fixtures_audio import corrupt_in_place, make_librispeech, make_vctk, write

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "audiolvm" / "data"


def _music(root: Path) -> Path:
    write(root / "audio" / "bwv153.1.flac", 1600, 16000)
    (root / "metadata.csv").write_text("track_id,title,ensemble\nbwv153.1,Ach Gott,brass\n", encoding="utf-8")
    return root


def _folder(root: Path) -> Path:
    write(root / "spk" / "a.wav", 1600, 16000)
    return root


def _libri_split(root: Path) -> Path:  # one split folder
    return make_librispeech(root) / "dev-clean"


def _libri_parent(root: Path) -> Path:  # the folder that holds LibriSpeech/
    make_librispeech(root)
    return root


def _vctk_080(root: Path) -> Path:
    write(root / "wav48" / "p225" / "p225_001.wav", 1600, 16000)
    return root


def _vctk_and_music(root: Path) -> Path:  # both markers: VCTK is asked first
    return _music(make_vctk(root))


def _libri_and_music(root: Path) -> Path:  # both markers: LibriSpeech is asked before music
    return _music(make_librispeech(root))


# layout -> (builder, the reader that the chain of checks before the registry chose)
LAYOUTS: dict[str, tuple[Callable[[Path], Path], type[FileCorpusReader]]] = {
    "vctk": (make_vctk, VCTKReader),
    "vctk_080": (_vctk_080, VCTKReader),
    "librispeech": (make_librispeech, LibriSpeechReader),
    "librispeech_split": (_libri_split, LibriSpeechReader),
    "librispeech_parent": (_libri_parent, LibriSpeechReader),
    "music": (_music, MusicCorpusReader),
    "folder": (_folder, FolderReader),
    "vctk_and_music": (_vctk_and_music, VCTKReader),
    "librispeech_and_music": (_libri_and_music, LibriSpeechReader),
}
OWN = {"vctk": VCTKReader, "vctk_080": VCTKReader, "librispeech": LibriSpeechReader,
       "librispeech_split": LibriSpeechReader, "librispeech_parent": LibriSpeechReader,
       "music": MusicCorpusReader, "folder": FolderReader}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    return {name: build(base / name) for name, (build, _) in LAYOUTS.items()}


@pytest.mark.parametrize("name", sorted(OWN))
def test_each_reader_matches_its_own_layout_only(layouts: dict[str, Path], name: str) -> None:
    """A layout reader says yes to its layout and no to every other; the plain folder reader says yes to any
    folder with an audio file (so it must be asked last) and no to one without."""
    for reader in READERS:
        expected = reader is OWN[name] or reader is FolderReader
        assert reader.matches(layouts[name]) is expected, (reader.kind, name)


def test_no_reader_matches_a_folder_without_audio(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("no audio here")
    (tmp_path / ".hidden.wav").write_bytes(b"")  # hidden files are never corpus files
    assert [r.kind for r in READERS if r.matches(tmp_path)] == []


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_registry_order_picks_the_same_reader_as_before(layouts: dict[str, Path], name: str) -> None:
    expected = LAYOUTS[name][1]
    assert detect_kind(layouts[name]) == expected.kind
    reader = open_corpus(layouts[name])
    assert type(reader) is expected and reader.entries()


def test_registry_is_a_fixed_tuple_of_distinct_readers() -> None:
    assert isinstance(READERS, tuple)
    assert [r.kind for r in READERS] == ["vctk", "librispeech", "music", "folder"]
    for reader in READERS:
        assert "matches" in vars(reader) and reader.layout, f"{reader.__name__}: no matches() or layout of its own"


def test_every_folder_reader_is_registered() -> None:
    """A FileCorpusReader subclass defined in the package but left out of READERS would never be detected."""
    def subclasses(cls: type) -> set[type]:
        return {s for c in cls.__subclasses__() for s in {c, *subclasses(c)}}

    ours = {c for c in subclasses(FileCorpusReader) if c.__module__.startswith("audiolvm.data.")}
    assert ours == set(READERS)


def test_unknown_layout_names_the_folder_and_every_layout_tried(tmp_path: Path) -> None:
    root = tmp_path / "nothing_here"
    (root / "sub").mkdir(parents=True)
    with pytest.raises(CorpusError) as err:
        open_corpus(root)
    msg = str(err.value)
    assert msg.startswith(f"{root}: no audio files found") and "--data" in msg
    for reader in READERS:
        assert f"{reader.kind}: {reader.layout}" in msg
    assert msg.index("vctk:") < msg.index("librispeech:") < msg.index("music:") < msg.index("folder:")


def test_unknown_kind_names_the_folder_and_the_kinds(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(tmp_path))}: unknown corpus kind 'timit' .*use auto, "
                                          "vctk, librispeech, music, folder$"):
        open_corpus(_folder(tmp_path), kind="timit")


def test_a_forced_kind_that_does_not_fit_says_so(layouts: dict[str, Path]) -> None:
    for kind in ("vctk", "librispeech", "music"):
        with pytest.raises(CorpusError, match=re.escape(str(layouts["folder"]))):
            open_corpus(layouts["folder"], kind=kind)
    assert type(open_corpus(layouts["music"], kind="folder")) is FolderReader


def _snapshot_code() -> str:
    return (
        "import importlib, sys\n"
        "import audiolvm.data\n"
        "def snap():\n"
        "    out = {}\n"
        "    for name, mod in sorted(sys.modules.items()):\n"
        "        if not name.startswith('audiolvm') or name == 'audiolvm.data.readers.music':\n"
        "            continue\n"
        "        for key, value in vars(mod).items():\n"
        "            items = value.items() if isinstance(value, dict) else enumerate(value) "
        "if isinstance(value, (list, tuple, set)) else ()\n"
        "            out[(name, key)] = (id(value), tuple((k, id(v)) for k, v in items))\n"
        "    return out\n"
        "before = snap()\n"
        "importlib.reload(sys.modules['audiolvm.data.readers.music'])\n"
        "after = snap()\n"
        "changed = sorted(k for k in before if after.get(k) != before[k])\n"
        "print(changed)\n"
        "sys.exit(1 if changed else 0)\n"
    )


def test_importing_the_music_reader_changes_no_other_module() -> None:
    """Running the music reader's module body again (a reload) leaves every other module's globals, the
    registry included, as they were: nothing registers itself on import."""
    proc = subprocess.run([sys.executable, "-c", _snapshot_code()], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _data_modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(DATA.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def test_no_module_level_statement_in_data_has_side_effects() -> None:
    """Only imports, definitions, docstrings and plain name assignments at module level: no registration
    (``REGISTRY[k] = cls``, ``REGISTRY.append(cls)``) and no work done on import."""
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.AnnAssign, ast.Assign)
    bad = []
    for name, path in _data_modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # docstring
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names = [e for t in targets if t is not None for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            if not isinstance(node, allowed) or not all(isinstance(t, ast.Name) for t in names):
                bad.append(f"{name}:{node.lineno}")
    assert not bad, bad


# The import-circle and lazy-import checks cover all of audiolvm in tests/test_architecture.py.


def test_package_exports_what_other_layers_import() -> None:
    for name in ("CropDataset", "open_corpus", "split_entries", "Entry", "unseen_speakers", "CorpusReader",
                 "iter_audio", "AUDIO_EXTENSIONS", "CorpusError", "skip_summary", "CachedReader", "ResampledCache",
                 "PitchTable", "CodeStore"):
        assert name in data.__all__ and hasattr(data, name), name


def test_iter_audio_resamples_and_skips_what_broke_after_the_scan(tmp_path: Path) -> None:
    write(tmp_path / "a" / "one.wav", 1600, 16000)
    write(tmp_path / "a" / "two.flac", 3200, 16000, seed=1)
    reader = FolderReader(tmp_path)
    entries = reader.entries()
    corrupt_in_place(tmp_path / "a" / "two.flac")
    got = list(iter_audio(reader, entries, 8000, progress=False))
    assert [e.utterance for e, _ in got] == ["a/one"]
    assert got[0][1].dtype == np.float32 and abs(len(got[0][1]) - 800) <= 1
    assert reader.skipped == {"unreadable by soundfile": 1}


# Numbers computed with the code before issue 17 (audiolvm/data/manifest.py at fbf826f): the split of manifest.py
# must change none of them, or every cached manifest and every run's train / valid split would change.
def test_manifest_signature_and_location_are_unchanged(tmp_path: Path) -> None:
    files = []
    for i, name in enumerate(["a/x.wav", "a/y.flac", "b/z.wav"]):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(range(10 + i)))
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000 + i))
        files.append(path)
    signature = file_signature(tmp_path, files, "folder", {"extensions": [".flac", ".wav"]})
    assert signature == "dff49dfe36c2824448efd28169f0ed64dd775825d2f70905474bc4ad65437273"
    assert cache_candidates(Path("/c/corpus"), "vctk", cache_dir="/x") == [Path("/x/98255095dcff128ce9332caf.jsonl")]


def test_manifest_file_keeps_its_format(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "bad.wav").write_bytes(b"RIFF not really")
    FolderReader(root).entries()
    header, *lines = [json.loads(s) for s in (root / ".audiolvm_manifest.folder.jsonl").read_text().splitlines()]
    assert set(header) == {"version", "kind", "options", "signature", "root", "files"} and header["version"] == 2
    assert [sorted(rec) for rec in lines] == [sorted(Entry.__dataclass_fields__), ["error", "path"]]
    assert lines[0]["path"] == "spk/a.wav" and lines[1]["path"] == "bad.wav"


def test_splits_and_unseen_speakers_are_unchanged() -> None:
    entries = [Entry(f"/c/s{s}/{u}.wav", f"s{s}", f"s{s}_{u:03d}", "", 1.0, 16000, 16000)
               for s in range(8) for u in range(6)]

    def valid(by: str, seed: int) -> list[str]:
        return [e.utterance for e in split_entries(entries, 0.25, by=by, seed=seed)[1]]

    assert valid("utterance", 0) == ["s0_000", "s0_004", "s1_003", "s1_005", "s2_005", "s3_000", "s3_002", "s4_000",
                                     "s4_003", "s5_002", "s5_005", "s6_002", "s7_000"]
    assert valid("utterance", 5) == ["s0_003", "s1_004", "s1_005", "s2_000", "s2_001", "s3_003", "s3_005", "s4_001",
                                     "s5_000", "s5_001", "s6_001", "s6_005", "s7_001"]
    assert valid("speaker", 0) == [f"s{s}_{u:03d}" for s in (0, 4) for u in range(6)]
    assert valid("speaker", 2) == [f"s{s}_{u:03d}" for s in (3, 7) for u in range(6)]
    assert unseen_speakers(entries, 3, seed=0) == ["s0", "s2", "s5"]
    assert unseen_speakers(entries, 2, seed=7) == ["s4", "s6"]


def test_unseen_speakers_by_name_are_exactly_those_named() -> None:
    entries = [Entry(f"/c/s{s}/{u}.wav", f"s{s}", f"s{s}_{u:03d}", "", 1.0, 16000, 16000)
               for s in range(8) for u in range(2)]
    assert unseen_speakers(entries, 2, seed=0, names=["s7", "s1"]) == ["s1", "s7"]
    assert unseen_speakers(entries, 2, seed=5, names=["s7", "s1"]) == ["s1", "s7"]  # the seed draws nothing
    with pytest.raises(UsageError, match=r"\['s9'\] not among"):
        unseen_speakers(entries, 1, names=["s9"])
    with pytest.raises(UsageError, match="set unseen_speakers=2"):
        unseen_speakers(entries, 3, names=["s7", "s1"])
