"""The page of an ``audiolvm lab`` output folder: per experiment (``<name>.json`` + ``<name>.png``, as
``lab.registry.run_experiment`` writes them), its description, figure, numbers and settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiolvm.core.files import read_json
from audiolvm.lab.registry import EXPERIMENTS
from audiolvm.report.media import MediaFiles
from audiolvm.report.page import Block, Page, Section, Text
from audiolvm.report.tables import mapping_table

LAB_KEYS = {"experiment", "config", "results"}  #: what every lab experiment's JSON holds


def lab_records(folder: Path) -> dict[Path, dict[str, Any]]:
    """The experiments' JSON files of ``folder`` (those whose figure is beside them), by path."""
    found = {}
    for path in sorted(folder.glob("*.json")):
        record = read_json(path, "run the experiment again ('audiolvm lab <name> --out <folder>')")
        if isinstance(record, dict) and LAB_KEYS <= set(record) and path.with_suffix(".png").is_file():
            found[path] = record
    return found


def lab_page(folder: Path, media: MediaFiles) -> Page:
    sections = []
    for path, record in lab_records(folder).items():
        name = str(record["experiment"])
        blocks: list[Block] = [Text.of(EXPERIMENTS[name].description)] if name in EXPERIMENTS else []
        blocks += [mapping_table(record["results"], caption=f"{path.name}: results"),
                   mapping_table(record["config"], caption=f"{path.name}: settings")]
        sections.append(Section(f"Lab: {name}", blocks, command=f"audiolvm lab {name} --out {folder}",
                                figures=[media.image(path.with_suffix(".png"), f"{name}: figure")]))
    return Page("audiolvm lab experiments", folder, sections)
