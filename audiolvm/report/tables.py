"""Tables and text for the page from what commands write: rows of JSON records, and the markdown (pipe tables,
headings, paragraphs) of their ``.md`` reports."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from audiolvm.report.page import Block, Heading, Table, Text

MISSING = "–"  # a cell with no value (None, NaN)
LONGEST = 60  # characters of a list shown whole; a longer one is summarised by its length and ends
_RULE = re.compile(r"^:?-{2,}:?$")  # a cell of a markdown table's header rule


def cell(value: Any) -> str:
    """A value as the page shows it: floats to 4 significant digits (those from 10^4 to 10^9 as whole numbers, not
    in exponent form), None and NaN as a dash, lists and mappings as compact JSON (a long list by its length and
    ends)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.0f}" if 1e4 <= abs(value) < 1e9 else f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, separators=(", ", ": "))
        if len(text) <= LONGEST or not isinstance(value, (list, tuple)):
            return text
        return f"{len(value)} values: {cell(value[0])} … {cell(value[-1])}"  # a curve: its length and ends
    return str(value)


LEAD = ("level", "name", "items")  # the columns that say what a row is, first when records' keys come sorted


def records_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                  caption: str = "") -> Table:
    """One row per record; the columns are ``columns``, else every key in order of first appearance (those of
    :data:`LEAD` first: ``report.json`` holds its keys sorted)."""
    if columns is None:
        keys = list(dict.fromkeys(k for r in records for k in r))
        columns = [k for k in LEAD if k in keys] + [k for k in keys if k not in LEAD]
    rows = tuple(tuple(cell(r.get(c)) for c in columns) for r in records)
    return Table(tuple(columns), rows, caption)


def labelled_table(rows: Mapping[str, Mapping[str, Any]], first: str, columns: Sequence[str] | None = None,
                   caption: str = "") -> Table:
    """``{label: {column: value}}`` as a table whose first column, ``first``, holds the labels."""
    return records_table([{first: label, **row} for label, row in rows.items()],
                         [first, *columns] if columns is not None else None, caption)


def mapping_table(values: Mapping[str, Any], caption: str = "", skip: Iterable[str] = ()) -> Table:
    """A two-column table (name, value) of the scalar entries of ``values`` (nested mappings flattened as
    ``outer/inner``)."""
    skipped = set(skip)

    def flat(prefix: str, data: Mapping[str, Any]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for key, value in data.items():
            name = f"{prefix}{key}"
            if key in skipped:
                continue
            out += flat(f"{name}/", value) if isinstance(value, Mapping) else [(name, value)]
        return out

    return Table(("name", "value"), tuple((name, cell(v)) for name, v in flat("", values)), caption)


def _row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_blocks(text: str, top: int = 3) -> list[Block]:
    """Headings, pipe tables and paragraphs of markdown ``text`` (as the commands write it: no nesting, no inline
    markup but code spans). A heading's level is moved so the shallowest one in ``text`` becomes ``top``."""
    blocks: list[Block] = []
    depths = [len(m.group(1)) for m in re.finditer(r"^(#+)\s", text, re.M)]
    shift = top - min(depths) if depths else 0
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
        elif m := re.match(r"^(#+)\s+(.*)$", line):
            blocks.append(Heading(m.group(2).strip(), min(6, len(m.group(1)) + shift)))
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_row(lines[i]))
                i += 1
            body = [r for r in rows[1:] if not all(_RULE.match(c) for c in r)]
            blocks.append(Table(tuple(rows[0]), tuple(tuple(r) for r in body)))
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#+\s|\|)", lines[i].strip()):
                para.append(lines[i].strip())
                i += 1
                if para[-1].startswith("- ") and i < len(lines) and lines[i].strip().startswith("- "):
                    break  # one paragraph per list item
            blocks.append(Text.of(" ".join(para)))
    return blocks
