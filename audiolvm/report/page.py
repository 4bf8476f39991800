"""What a report page shows, as plain data for its templates: sections of text, tables, charts, figures and audio
players. Nothing here knows HTML; ``templates/`` does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from audiolvm.report.charts import Chart


@dataclass(frozen=True)
class Media:
    """One file shown on the page. ``src`` is a base64 data URI (embedded) or a link relative to the page."""

    path: Path
    src: str
    label: str
    mime: str
    duration: float | None = None  # seconds, audio only


@dataclass(frozen=True)
class Player:
    """An audio file, with its spectrogram when one was written beside it (the same name, ``.png``)."""

    audio: Media
    spectrogram: Media | None = None


@dataclass
class Example:
    """One item: a player per version of it (the original, each level's reconstruction, a conversion) and its
    figures (a spectrogram of all versions together, pitch tracks)."""

    name: str
    players: list[Player]
    figures: list[Media] = field(default_factory=list)


@dataclass(frozen=True)
class Text:
    """A paragraph, as ``(text, is_code)`` spans (code: what markdown puts between backticks)."""

    spans: tuple[tuple[str, bool], ...]
    kind: ClassVar[str] = "text"

    @classmethod
    def of(cls, text: str) -> Text:
        """``text`` split at its backticks: the odd pieces are code."""
        pieces = text.split("`")
        return cls(tuple((piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece))


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 3  # h3 inside a section (h2)
    kind: ClassVar[str] = "heading"


@dataclass(frozen=True)
class Table:
    """A table of formatted cells: ``rows[i][j]`` is row i's value in ``columns[j]``."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    kind: ClassVar[str] = "table"


Block = Text | Heading | Table


@dataclass
class Section:
    """One part of the page (a ``<section>`` with an ``<h2>``); the template shows what is not empty, in this order:
    text and tables, the reproducing command, the config, charts, figures, players, examples, subsections."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    command: str | None = None
    config: str | None = None  # a run's config, as YAML text
    charts: list[Chart] = field(default_factory=list)
    figures: list[Media] = field(default_factory=list)
    players: list[Player] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)
    collapsed: bool = False  # shown folded (a <details>), opened by a click

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"

    @property
    def media(self) -> list[Media]:
        """Every file this section and its subsections show."""
        found = list(self.figures)
        for player in self.players + [p for ex in self.examples for p in ex.players]:
            found += [player.audio] + ([player.spectrogram] if player.spectrogram else [])
        found += [m for ex in self.examples for m in ex.figures]
        return found + [m for sub in self.subsections for m in sub.media]


@dataclass
class Page:
    """The whole report: a title, where it was read from, and its sections (those with nothing to show left out)."""

    title: str
    source: Path
    sections: list[Section]

    @property
    def media(self) -> list[Media]:
        return [m for s in self.sections for m in s.media]

    @property
    def tables(self) -> list[Table]:
        def walk(section: Section) -> list[Table]:
            own = [b for b in section.blocks if isinstance(b, Table)]
            return own + [t for sub in section.subsections for t in walk(sub)]

        return [t for s in self.sections for t in walk(s)]
