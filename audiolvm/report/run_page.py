"""The page of one run folder, from what the training command and the commands run on it wrote there: the config and
the command that reproduces it, the training curves and last values (a prior's held-out NLL), ``evaluate``'s
per-level metrics (and an adversarial run's discriminator scores), ``evaluate-image``'s scores and grids,
``evaluate-vc``'s and ``probe``'s reports, samples in ``samples/`` and the examples in ``examples/`` (players beside
spectrograms). A part the folder lacks is left out."""

from __future__ import annotations

from pathlib import Path

from audiolvm.builders.runs import read_run_config, recorded_kind
from audiolvm.core.files import read_json
from audiolvm.report.collect import curves_section, examples_in, figures_in, players_in, run_overview, vc_examples
from audiolvm.report.media import MediaFiles
from audiolvm.report.page import Block, Page, Section, Text
from audiolvm.report.tables import mapping_table, markdown_blocks, records_table

EXAMPLES = "examples"  #: where a run's examples are (report.examples.write_examples writes them)
SAMPLES = "samples"  #: where a prior run's page looks for samples (audiolvm sample --out <run>/samples)


def metrics_section(run: Path) -> Section | None:
    """``eval/metrics.json`` (``audiolvm evaluate``): one row per level, every metric a column; and the
    discriminators' scores of an adversarial run."""
    path, scores = run / "eval" / "metrics.json", run / "eval" / "discriminator_scores.json"
    if not path.is_file():
        return None
    rows = read_json(path, "run 'audiolvm evaluate' on the run again")
    blocks: list[Block] = [Text.of("`audiolvm evaluate` on held-out audio: one row per level (SI-SDR in dB, higher is "
                                 "better; distances, lower is better)."), records_table(rows, caption=str(path))]
    if scores.is_file():
        blocks += [Text.of("The run's own discriminators on the same items (mean logit; higher: judged real):"),
                   mapping_table(read_json(scores), caption=str(scores))]
    return Section("Reconstruction metrics per level", blocks)


def image_eval_section(run: Path, media: MediaFiles) -> Section | None:
    """``eval/eval.json`` and the grids of ``audiolvm evaluate-image``."""
    path = run / "eval" / "eval.json"
    if not path.is_file():
        return None
    metrics = read_json(path, "run 'audiolvm evaluate-image' on the run again")
    return Section("Image evaluation", [mapping_table(metrics, caption=str(path), skip=("grids",))],
                   figures=figures_in(run / "eval", media))


def report_section(run: Path, media: MediaFiles, folder: str, markdown: str, title: str,
                   audio: str | None = None, figures: str | None = "*.png") -> Section | None:
    """A command's markdown report in ``<run>/<folder>`` (its tables and text), its ``figures`` (a file pattern)
    and the conversions in its ``audio`` subfolder (:func:`vc_examples`)."""
    path = run / folder / markdown
    if not path.is_file():
        return None
    return Section(title, markdown_blocks(path.read_text(encoding="utf-8")),
                   figures=figures_in(run / folder, media, figures) if figures else [],
                   examples=vc_examples(run / folder / audio, media, run) if audio else [])


def samples_section(run: Path, media: MediaFiles) -> Section | None:
    """Samples drawn into ``<run>/samples`` (``audiolvm sample ... --out <prior run>/samples``): players beside
    their spectrograms, the pitch tracks, and the music measures when ``--measure`` wrote them."""
    folder = run / SAMPLES
    players = players_in(folder, media)
    if not players:
        return None
    measures = folder / "music_measures.md"
    blocks = markdown_blocks(measures.read_text(encoding="utf-8")) if measures.is_file() else []
    return Section("Samples", blocks, figures=figures_in(folder, media, "pitch.png"), players=players)


def run_page(run: Path, media: MediaFiles) -> Page:
    """The page of the run folder ``run`` (its ``config.json`` names its kind)."""
    config = read_run_config(run / "config.json")
    kind = recorded_kind(config, str(run / "config.json"))
    examples = examples_in(run / EXAMPLES, media)
    sections = [
        run_overview(run, config, kind),
        curves_section(run),
        metrics_section(run),
        image_eval_section(run, media),
        report_section(run, media, "vc", "vc.md", "Voice conversion (evaluate-vc)", audio="examples"),
        report_section(run, media, "vc", "unseen.md", "Unseen voices (evaluate-vc --unseen)",
                       audio="unseen_examples", figures=None),
        report_section(run, media, "probe", "probe.md", "Phone probe (probe)"),
        samples_section(run, media),
        Section("Examples", [Text.of("Held-out items: the original and each level's reconstruction, each with its "
                                     "log-mel spectrogram.")], examples=examples) if examples else None,
    ]
    if not examples and (figures := figures_in(run / EXAMPLES, media)):  # e.g. the demo's before/after spectrograms
        sections.append(Section("Spectrograms", figures=figures))
    title = f"{config.get('name') or run.name}: {kind} run"
    return Page(title, run, [s for s in sections if s is not None])
