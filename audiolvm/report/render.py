"""``audiolvm report``: which folder it is (a run, the demo's or a lab folder), its page, and the page written as one
HTML file from the Jinja2 templates shipped in ``audiolvm/report/templates`` (package data)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from audiolvm.core.errors import MissingFileError, UsageError
from audiolvm.core.files import atomic_write_text
from audiolvm.report.demo_page import REPORT_JSON, demo_page
from audiolvm.report.lab_page import lab_page, lab_records
from audiolvm.report.media import MediaFiles
from audiolvm.report.page import Page
from audiolvm.report.run_page import run_page

PAGE = "report.html"  #: the page's default name, inside the folder it reports on


def environment() -> jinja2.Environment:
    """The templates, HTML-escaped, with missing variables as errors (a template typo fails loudly)."""
    return jinja2.Environment(loader=jinja2.PackageLoader("audiolvm.report", "templates"),
                              autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def folder_kind(path: Path) -> str:
    """``demo`` (a ``report.json``, as ``audiolvm demo`` writes), ``run`` (a ``config.json``, as every training
    command writes) or ``lab`` (``<name>.json`` + ``<name>.png`` of ``audiolvm lab``); anything else is an error
    naming the path and what was expected."""
    if not path.exists():
        raise MissingFileError(f"{path}: no such folder; pass a run folder, the demo's output folder or a lab folder")
    if not path.is_dir():
        raise UsageError(f"{path}: not a folder; pass a run folder (with config.json), the demo's output folder "
                         f"(with {REPORT_JSON}) or a lab folder (with <experiment>.json and .png)")
    if (path / REPORT_JSON).is_file():
        return "demo"
    if (path / "config.json").is_file():
        return "run"
    if lab_records(path):
        return "lab"
    raise MissingFileError(f"{path}: neither a run folder (no config.json, which 'audiolvm train' and the other "
                           f"training commands write) nor the demo's output folder (no {REPORT_JSON}, which "
                           "'audiolvm demo' writes) nor a lab folder (no <experiment>.json beside its .png, which "
                           "'audiolvm lab' writes); pass one of those")


def build_page(path: Path, out: Path, link: bool = False, audio: str = "flac") -> Page:
    """The page of the run, demo or lab folder ``path``, its files embedded (audio as ``audio``: ``flac`` or
    ``opus``, see :mod:`audiolvm.report.media`), or with ``link`` linked relative to ``out``."""
    media = MediaFiles(out, link, audio)
    pages = {"demo": demo_page, "run": run_page, "lab": lab_page}
    return pages[folder_kind(path)](path, media)


def render(page: Page) -> str:
    return environment().get_template("report.html.j2").render(page=page)


def write_report(path: str | Path, out: str | Path | None = None, link: bool = False, audio: str = "flac") -> Path:
    """Write the HTML page of the run, demo or lab folder ``path`` to ``out`` (default ``<path>/report.html``),
    atomically; returns ``out``. ``link`` and ``audio``: see :func:`build_page`."""
    path = Path(path)
    target = Path(out) if out is not None else path / PAGE
    return atomic_write_text(target, render(build_page(path, target, link, audio)))
