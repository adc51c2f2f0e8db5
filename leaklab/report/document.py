"""The report as plain data: sections of blocks that the Markdown and HTML renderers
walk. Content is built once; each renderer only decides how a block looks (and
escapes every piece of text, since most of it comes from a run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Para:
    """A paragraph; ``strong`` is shown in bold before ``text``."""

    text: str
    strong: str = ""


@dataclass
class Notice:
    """Something the reader must see first (a run that did not complete)."""

    text: str
    level: str = "warning"  # "warning" or "info"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    key: str = ""  # name of the table in summary.json
    colours: list[str] = field(
        default_factory=list
    )  # per column header ("" for none): before/after
    text_columns: int = 1  # leading columns of text (left-aligned); the rest hold numbers


@dataclass
class Figure:
    path: Path
    alt: str
    caption: str = ""


@dataclass
class Pre:
    """Preformatted text (retention chains, tracebacks), shown verbatim."""

    text: str
    title: str = ""


@dataclass
class Bullets:
    items: list[str]


Block = Para | Notice | Table | Figure | Pre | Bullets


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str = ""
    notices: list[Notice] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table)]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]
