"""``audiolvm report``: the page data of a run folder and of the demo's folder (metrics, tables, charts, players,
examples), embedded audio that decodes to its source, relative links with --link, and clear errors."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomllib

from audiolvm.builders import load_model, split_entries_for
from audiolvm.core.audio import save_audio
from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.eval import plot_spectrograms
from audiolvm.eval.examples import write_examples as write_demo_examples
from audiolvm.report import EXAMPLES, build_page, ensure_examples, render, write_report
from audiolvm.report.charts import line_chart, log_ticks, nice_ticks, training_charts
from audiolvm.report.media import decode_data_uri
from audiolvm.report.tables import markdown_blocks
from audiolvm_pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny" / "speech_vqvae.yaml")
DATA = f"data.root={ROOT / 'data' / 'speech'}"
TWO_LEVELS = ["model.strides=[[2,4],[2]]", "model.vq.num_codes=[32,32]"]

pytestmark = pytest.mark.usefixtures("one_thread")


def make_run(out: Path, examples: int = 2) -> Path:
    """A tiny two-level speech run (4 steps, a log row every step), scored by ``evaluate`` on 2 held-out items,
    with ``examples`` examples (through ``ensure_examples``, as ``audiolvm report`` writes them)."""
    assert main(["train", TINY, DATA, *TWO_LEVELS, f"train.out_dir={out}", "train.max_steps=4", "train.log_every=1",
                 "train.valid_every=2"]) == 0
    assert main(["evaluate", "--checkpoint", str(out), "--limit", "2", "--pitch", "off"]) == 0
    if examples:
        assert len(ensure_examples(out, examples)) == examples
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("report") / "run")


class Tables(HTMLParser):
    """Every ``<table>`` of a page as its header cells and body rows of cell texts, and every ``src`` of an
    ``<audio>`` or ``<img>``."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self.sources: dict[str, list[str]] = {"audio": [], "img": []}
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_body = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in self.sources:
            self.sources[tag].append(dict(attrs)["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            header, body = self.tables[-1]
            (body.append(self._row) if self._in_body else header.extend(self._row))
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def expected_cell(value: object) -> str:
    """How the page must show a JSON value: 4 significant digits (10000.0 as 10000, not 1e+04); a dash for null."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return str(round(value)) if 1e4 <= abs(value) < 1e9 else format(value, ".4g")
    return str(value)


# ------------------------------------------------------------------------------------------------ run folder
def test_every_metric_of_the_runs_json_appears_in_its_table(run_dir: Path, tmp_path: Path) -> None:
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    html = render(build_page(run_dir, tmp_path / "page.html"))
    tables = Tables(html).tables
    header, rows = next(t for t in tables if t[0] and t[0][0] == "level")
    assert header == list(metrics[0])  # every metric is a column, in the file's order
    assert rows == [[expected_cell(row[k]) for k in header] for row in metrics]  # one row per level, every value
    assert [r[0] for r in rows] == ["level 0 (hop 8)", "level 1 (hop 16)"]


def test_run_page_shows_config_command_curves_and_examples(run_dir: Path, tmp_path: Path) -> None:
    page = build_page(run_dir, tmp_path / "page.html")
    titles = [s.title for s in page.sections]
    assert titles == ["Run", "Training curves", "Reconstruction metrics per level", "Examples"]
    overview = page.sections[0]
    assert overview.command == f"audiolvm train {run_dir / 'config.json'} train.out_dir={run_dir}_again"
    assert overview.config is not None and "kind: audio" in overview.config and "max_steps: 4" in overview.config
    examples = page.sections[-1].examples
    assert len(examples) == 2
    for example in examples:
        assert [p.audio.label for p in example.players] == ["original", "level 0", "level 1"]
        assert all(p.spectrogram is not None for p in example.players)  # each player beside its spectrogram
        assert all(p.audio.path.parent == run_dir / EXAMPLES for p in example.players)


def test_examples_are_held_out_items_reconstructed_at_every_level(run_dir: Path) -> None:
    _, cfg = load_model(run_dir)
    _, valid = split_entries_for(cfg, "valid")
    names = [e.utterance for e, _ in valid[:2]]
    for name in names:
        original, rate = sf.read(run_dir / EXAMPLES / f"{name}_original.wav")
        assert rate == cfg.data.sample_rate
        for level in (0, 1):
            recon, _ = sf.read(run_dir / EXAMPLES / f"{name}_level{level}.wav")
            assert len(recon) == len(original) and not np.array_equal(recon, original)
    assert ensure_examples(run_dir, 2) == []  # examples there already: none written again


def test_embedded_audio_decodes_to_the_samples_of_its_source(run_dir: Path, tmp_path: Path) -> None:
    page = build_page(run_dir, tmp_path / "page.html")
    audio = [m for m in page.media if m.mime.startswith("audio/")]
    assert len(audio) == 2 * 3
    for media in audio:
        data = decode_data_uri(media.src)
        decoded, rate = sf.read(io.BytesIO(data), dtype="int16")
        source, source_rate = sf.read(media.path, dtype="int16")
        assert rate == source_rate and np.array_equal(decoded, source)  # lossless, the source's duration
        assert media.duration == pytest.approx(len(source) / source_rate)
        assert media.mime == "audio/flac" and len(data) < media.path.stat().st_size  # PCM WAV re-encoded smaller
    sources = Tables(render(page)).sources
    assert len(sources["audio"]) == len(audio)
    assert all(s.startswith("data:audio/flac;base64,") for s in sources["audio"])
    assert sources["img"] and all(s.startswith("data:image/png;base64,") for s in sources["img"])


def test_link_mode_writes_links_relative_to_the_page(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages" / "run.html"
    assert write_report(run_dir, out, link=True) == out
    embedded = write_report(run_dir, tmp_path / "embedded.html")
    sources = Tables(out.read_text()).sources
    links = sources["audio"] + sources["img"]
    assert len(sources["audio"]) == 6 and len(links) > 6
    for link in links:
        assert not link.startswith(("/", "data:", "file:")) and link.startswith("../")
        assert (out.parent / link).resolve().parent == (run_dir / EXAMPLES).resolve()
    assert out.stat().st_size * 5 < embedded.stat().st_size


def test_training_charts_have_a_point_per_logged_value_with_its_step_and_value(run_dir: Path) -> None:
    with (run_dir / "metrics.csv").open() as fh:
        logged = [(int(r["step"]), float(r["value"])) for r in csv.DictReader(fh)
                  if r["name"] == "loss" and r["split"] == "train"]
    charts = {c.title: c for c in training_charts(run_dir / "metrics.csv")}
    assert "lr" not in charts and {"loss", "l0/vq/perplexity", "l1/waveform"} <= set(charts)
    loss = charts["loss"]
    train = next(s for s in loss.series if s.label == "train")
    assert [p.tip for p in train.points] == [f"train, step {s}: {v:.6g}" for s, v in logged]
    xs = [p.x for p in train.points]
    assert xs == sorted(xs) and loss.left <= xs[0] and xs[-1] <= loss.right
    assert loss.log and not charts["l0/vq/perplexity"].log  # a positive loss on a log axis, a count on a linear one
    html = render(build_page(run_dir, run_dir / "unused.html"))
    assert html.count("<title>train, step ") == sum(len(s.points) for c in charts.values() for s in c.series
                                                       if s.label == "train")


def test_chart_scales_put_larger_values_higher_and_ticks_on_round_numbers() -> None:
    chart = line_chart("loss", {"train": ([0, 10, 20], [4.0, 2.0, 1.0]), "valid": ([20], [float("nan")])})
    assert chart is not None and [s.label for s in chart.series] == ["train"]  # a series of NaN only is left out
    ys = [p.y for p in chart.series[0].points]
    assert ys[0] < ys[1] < ys[2]  # SVG y grows downwards: the falling loss goes down
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2])  # log axis: halving is a constant step
    assert nice_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert log_ticks(0.05, 20.0) == pytest.approx([0.1, 1.0, 10.0])
    assert log_ticks(0.3, 4.0) == pytest.approx([0.5, 1.0, 2.0])  # under two decades: 1-2-5 steps
    assert log_ticks(5.1, 6.2) == pytest.approx([5.2, 5.4, 5.6, 5.8, 6.0, 6.2])  # narrower: round values
    assert line_chart("loss", {"train": ([1], [float("inf")])}) is None


def test_missing_parts_of_a_run_are_absent_sections(tmp_path: Path, run_dir: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.json", bare / "config.json")
    page = build_page(bare, bare / "report.html")
    assert [s.title for s in page.sections] == ["Run"]
    assert "no exported weights yet" in render(page)


def test_a_folder_that_is_neither_a_run_nor_the_demos_is_a_clear_error(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(MissingFileError, match="neither a run folder .*config.json.* nor the demo's output folder "
                                               ".*report.json.*; pass one of those") as err:
        write_report(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(MissingFileError, match="no such folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "report.json").write_text('{"other": 1}')
    with pytest.raises(UsageError, match=r"report.json: not the demo's report .*stages"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith(f"audiolvm report: error: {tmp_path / 'missing'}: no such folder")


def test_the_command_writes_examples_then_the_page(run_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns(EXAMPLES))  # the run as trained: no examples
    assert main(["report", str(run), "--examples", "1", "--out", str(tmp_path / "out.html")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [f"wrote 1 examples to {run / EXAMPLES}", str(tmp_path / "out.html")]
    assert len(list((run / EXAMPLES).glob("*_original.wav"))) == 1
    assert Tables((tmp_path / "out.html").read_text()).sources["audio"]  # the players are on the page


# ------------------------------------------------------------------------------------------------ demo folder
VC_MD = """# Voice conversion: tiny

Scored by `speaker_classifier`.

| measure | value |
|---|---:|
| target accuracy | 0.50 |
| leakage | 0.25 |

## Content

| level | code→phone |
|---|---:|
| 0 | 0.31 |
"""


VC_EXAMPLES = ("e01_010_real", "e01_010_reconstruction", "e01_010_to_e02", "e02_005_real", "e02_005_to_e03")
UNSEEN_EXAMPLES = ("e01_010_real", "e01_010_to_e12", "e12_reference")


def make_demo(root: Path, run_dir: Path) -> dict:
    """A demo folder as ``audiolvm demo --stages speech,priors,vc`` leaves it (on the tiny run; priors and vc
    reduced to their files and report.json entries): the speech run, its examples written as the demo writes them
    (``eval.examples.write_examples``), samples with spectrograms, the vc report and examples."""
    shutil.copytree(run_dir, root / "speech_vqvae", ignore=shutil.ignore_patterns(EXAMPLES, "checkpoints"))
    model, cfg = load_model(root / "speech_vqvae")
    reader, valid = split_entries_for(cfg, "valid")
    rate = cfg.data.sample_rate
    names = write_demo_examples(model, reader, [e for e, _ in valid[:2]], root / "speech_examples", rate)
    for i, seconds in enumerate((0.5, 0.75)):
        wave = 0.1 * np.sin(np.arange(int(seconds * rate)) * 0.05)
        save_audio(root / "speech_samples" / f"sample_{i:02d}.wav", wave, rate)
        plot_spectrograms({"sample": wave}, rate, root / "speech_samples" / f"sample_{i:02d}.png")
    wave = 0.1 * np.sin(np.arange(rate // 4) * 0.03)
    for name in VC_EXAMPLES:  # evaluate-vc's names: <speaker>_<utterance>_{real,reconstruction,to_<target>}
        save_audio(root / "vc" / "examples" / f"{name}.wav", wave, rate)
    for name in UNSEEN_EXAMPLES:  # and --unseen's: the unseen voice's reference clip beside them
        save_audio(root / "vc" / "unseen_examples" / f"{name}.wav", wave, rate)
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    report = {
        "stages": [{"name": "speech", "config": "configs/demo/speech_vqvae.yaml", "steps": 4, "train_seconds": 3.0,
                    "hops": [8, 16], "held_out_items": 2, "table": "", "metrics": metrics,
                    "corpus_usage": [{"level": 0, "hop": 8, "codes": 32, "used": 30, "perplexity": 20.5}],
                    "examples": names}],
        "gan": None,
        "priors": {"scores": [{"name": "speech_prior", "kind": "transformer", "level": 0, "steps": 4,
                               "train_seconds": 1.0, "nats_per_code": 3.1, "bits_per_code": 4.47}],
                   "samples": [{"corpus": "speech", "seconds": 0.5, "n": 2, "wall_seconds": 0.3, "rtf": 0.3,
                                "temperature": [1.0], "top_p": [0.95]}], "music": None},
        "vc": {"seconds": 5.0, "classifier": {"accuracy": 0.9, "n": 10}, "table": VC_MD,
               "unseen": "# Unseen voices\n\n| voice | target accuracy |\n|---|---:|\n| e12 | 0.5 |\n",
               "examples": [f"{name}.wav" for name in VC_EXAMPLES]},
        "probe": None, "images": None,
    }
    (root / "report.json").write_text(json.dumps(report))
    return report


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("demo")
    make_demo(root, run_dir)
    return root


def test_demo_page_has_a_section_per_stage_that_ran(demo_dir: Path) -> None:
    page = build_page(demo_dir, demo_dir / "report.html")
    assert [s.title for s in page.sections] == ["Speech: 2-level VQ-VAE, hops [8, 16]", "Priors over the codes",
                                                "Voice conversion"]
    speech, priors, vc = page.sections
    assert [sub.title for sub in speech.subsections] == ["Training curves (speech_vqvae)"]
    assert speech.command is not None and speech.command.startswith("audiolvm train ")
    for example in speech.examples:  # the demo's examples: players beside the spectrogram of all versions
        assert [p.audio.label for p in example.players] == ["original", "level 0", "level 1"]
        assert [f.path.name for f in example.figures] == [f"{example.name}.png"]
    samples = priors.subsections[0].players
    assert [p.audio.path.name for p in samples] == ["sample_00.wav", "sample_01.wav"]
    assert all(p.spectrogram is not None and p.spectrogram.path == p.audio.path.with_suffix(".png") for p in samples)
    assert [p.audio.duration for p in samples] == pytest.approx([0.5, 0.75])
    assert [f.path.name for f in vc.figures] == []  # no bar plot written: no figure, no error


def test_conversions_are_grouped_by_source_with_the_targets_real_voice(demo_dir: Path) -> None:
    vc = build_page(demo_dir, demo_dir / "report.html").sections[-1]
    found = {ex.name: [(p.audio.label, p.audio.path.name) for p in ex.players] for ex in vc.examples}
    assert found == {
        "e01_010": [("real (source)", "e01_010_real.wav"), ("reconstruction", "e01_010_reconstruction.wav"),
                    ("converted to e02", "e01_010_to_e02.wav"), ("e02's real voice", "e02_005_real.wav")],
        "e02_005": [("real (source)", "e02_005_real.wav"), ("converted to e03", "e02_005_to_e03.wav"),
                    ("e03's real voice", "e03_001_mic1.flac")],  # no clip of e03 here: one from the run's corpus
    }
    e03 = vc.examples[1].players[-1].audio
    assert e03.path.resolve() == (ROOT / "data" / "speech" / "wav48_silence_trimmed" / "e03" / "e03_001_mic1.flac")
    assert e03.mime == "audio/flac" and decode_data_uri(e03.src) == e03.path.read_bytes()  # a FLAC file as it is
    unseen = vc.subsections[0].examples
    assert [(p.audio.label, p.audio.path.name) for p in unseen[0].players] == [
        ("real (source)", "e01_010_real.wav"), ("converted to e12", "e01_010_to_e12.wav"),
        ("e12's real voice", "e12_reference.wav")]


def test_demo_tables_have_the_expected_rows(demo_dir: Path) -> None:
    report = json.loads((demo_dir / "report.json").read_text())
    tables = Tables(write_report(demo_dir).read_text()).tables
    by_header = {tuple(h): rows for h, rows in tables}
    metrics = report["stages"][0]["metrics"]  # every metric of report.json, in its row and column
    columns = ["level", "items", *(k for k in metrics[0] if k not in ("level", "items"))]  # what a row is, first
    assert by_header[tuple(columns)] == [[expected_cell(m[k]) for k in columns] for m in metrics]
    assert by_header[("level", "hop", "codes", "used", "perplexity")] == [["0", "8", "32", "30", "20.5"]]
    assert [r[0] for r in by_header[tuple(columns)]] == ["level 0 (hop 8)", "level 1 (hop 16)"]
    prior = by_header[("name", "kind", "level", "steps", "train_seconds", "nats_per_code", "bits_per_code")]
    assert prior == [["speech_prior", "transformer", "0", "4", "1", "3.1", "4.47"]]
    assert by_header[("measure", "value")] == [["target accuracy", "0.50"], ["leakage", "0.25"]]
    assert by_header[("level", "code→phone")] == [["0", "0.31"]]
    assert by_header[("voice", "target accuracy")] == [["e12", "0.5"]]
    last = by_header[("metric", "train", "train step", "valid", "valid step")]  # the speech run's last values
    assert [r[0] for r in last][:2] == ["loss", "grad_norm"] and last[0][2] == "4"
    assert len(tables) == 7


def test_markdown_blocks_keep_headings_tables_and_code() -> None:
    blocks = markdown_blocks(VC_MD, top=3)
    kinds = [b.kind for b in blocks]
    assert kinds == ["heading", "text", "table", "heading", "table"]
    assert blocks[0].text == "Voice conversion: tiny" and blocks[0].level == 3 and blocks[3].level == 4
    assert blocks[1].spans == (("Scored by ", False), ("speaker_classifier", True), (".", False))


# ------------------------------------------------------------------------------------------------ packaging
def test_the_templates_are_package_data() -> None:
    """An installed copy finds its templates: every file under audiolvm/report/templates matches a pattern of
    ``[tool.setuptools.package-data]`` for ``audiolvm.report``, and jinja2 is a dependency."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["audiolvm.report"]
    folder = ROOT / "audiolvm" / "report"
    files = [p.relative_to(folder).as_posix() for p in (folder / "templates").rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)
    assert any(d.startswith("jinja2") for d in project["project"]["dependencies"])


# ------------------------------------------------------------------------------------------------ lab folder
def test_lab_page_shows_each_experiments_figure_and_numbers(tmp_path: Path) -> None:
    assert main(["lab", "mog", "--steps", "5", "--samples", "200", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "mog.json").read_text())
    page = build_page(tmp_path, tmp_path / "report.html")
    (section,) = page.sections
    assert section.title == "Lab: mog" and section.command == f"audiolvm lab mog --out {tmp_path}"
    assert [m.path.name for m in section.figures] == ["mog.png"]
    results = Tables(render(page)).tables[0][1]
    scalars = {k: v for k, v in record["results"].items() if isinstance(v, (int, float, str))}
    assert scalars and all([k, expected_cell(v)] in results for k, v in scalars.items())
    curve = next(r for r in results if r[0] == "curve")  # a long list: its length and ends
    assert curve[1] == f"{len(record['results']['curve'])} values: {expected_cell(record['results']['curve'][0])} … " \
                       f"{expected_cell(record['results']['curve'][-1])}"


def test_samples_in_a_prior_run_are_players_beside_their_spectrograms(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "prior"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "prior", "name": "tiny_prior"}))
    wave = 0.1 * np.sin(np.arange(4000) * 0.05)
    save_audio(run / "samples" / "sample_00.wav", wave, 16000)
    plot_spectrograms({"sample": wave}, 16000, run / "samples" / "sample_00.png")
    page = build_page(run, run / "report.html")
    assert [s.title for s in page.sections] == ["Run", "Samples"]
    assert page.sections[0].command is not None and page.sections[0].command.startswith("audiolvm train-prior ")
    (sample,) = page.sections[1].players
    assert sample.audio.duration == pytest.approx(0.25) and sample.spectrogram is not None
