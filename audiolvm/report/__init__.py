"""One HTML page per run folder or demo folder (``audiolvm report``): what the commands wrote there, collected into
plain page data (``page.py``) and rendered by the Jinja2 templates in ``templates/`` with media embedded as base64
data URIs (or linked), training curves as SVG charts."""

from audiolvm.report.examples import ensure_examples, has_examples, write_examples
from audiolvm.report.page import Example, Media, Page, Player, Section, Table
from audiolvm.report.render import PAGE, build_page, folder_kind, render, write_report
from audiolvm.report.run_page import EXAMPLES

__all__ = ["EXAMPLES", "PAGE", "Example", "Media", "Page", "Player", "Section", "Table", "build_page",
           "ensure_examples", "folder_kind", "has_examples", "render", "write_examples", "write_report"]
