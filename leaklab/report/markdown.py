"""The report as Markdown (``report.md``), to paste into an incident write-up.

Text from a run is escaped so that it shows as written: Markdown punctuation is
backslash-escaped and ``<``, ``>``, ``&`` become entities, so a viewer that renders
inline HTML never sees a tag that came from a run.
"""

from __future__ import annotations

import re

from leaklab.report.document import Block, Bullets, Document, Figure, Notice, Para, Pre, Table

# Characters that start Markdown syntax anywhere in a line; "(" is harmless once "[" is escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def escape(text: str) -> str:
    """Inline text as literal Markdown (one line)."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _table(t: Table) -> list[str]:
    lines = [
        "| " + " | ".join(escape(h) for h in t.headers) + " |",
        "|"
        + "|".join(" --- " if i < t.text_columns else " ---: " for i in range(len(t.headers)))
        + "|",
    ]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"*{escape(t.caption)}*"]
    return lines


def _block(b: Block) -> list[str]:
    if isinstance(b, Para):
        return [(f"**{escape(b.strong)}** " if b.strong else "") + escape(b.text)]
    if isinstance(b, Notice):
        prefix = "**Warning:**" if b.level == "warning" else "**Note:**"
        return [f"> {prefix} {escape(b.text)}"]
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        lines = [f"![{escape(b.alt)}]({b.path.name})"]
        if b.caption:
            lines += ["", f"*{escape(b.caption)}*"]
        return lines
    if isinstance(b, Pre):
        fence = _fence(b.text)
        head = [f"**{escape(b.title)}**", ""] if b.title else []
        return [*head, fence + "text", b.text.rstrip("\n"), fence]
    if isinstance(b, Bullets):
        return [f"- {escape(item)}" for item in b.items]
    raise TypeError(f"unknown block {type(b).__name__}")


def render(doc: Document) -> str:
    out: list[str] = [f"# {escape(doc.title)}", ""]
    if doc.subtitle:
        out += [escape(doc.subtitle), ""]
    for notice in doc.notices:
        out += [*_block(notice), ""]
    for section in doc.sections:
        out += [f"## {escape(section.title)}", ""]
        for block in section.blocks:
            out += [*_block(block), ""]
    return "\n".join(out).rstrip() + "\n"
