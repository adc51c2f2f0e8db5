"""The report as one self-contained HTML file (``report.html``): inline CSS, charts
embedded as base64 PNG, no script and no network. Every piece of text goes through
:func:`html.escape`; a Content-Security-Policy forbids scripts and remote loads as a
second line of defence."""

from __future__ import annotations

import base64
import html

from leaklab.report.document import Block, Bullets, Document, Figure, Notice, Para, Pre, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1b1b1b;
       max-width: 1080px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.7em; margin-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.subtitle { color: #555; margin-top: 0; }
.notice { padding: .6em .9em; border-radius: 4px; margin: .8em 0; }
.warning { background: #fff4e5; border-left: 5px solid #d55e00; }
.info { background: #eef6fc; border-left: 5px solid #0072b2; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #d8d8d8; padding: .3em .65em; text-align: right; vertical-align: top; }
th.text, td.text { text-align: left; }
thead th { background: #f3f3f3; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .9em; padding-top: .3em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .7em; overflow-x: auto; font-size: .85em; }
"""  # noqa: E501 (one CSS rule per line)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(tag: str, text: str, is_text: bool, colour: str = "") -> str:
    attrs = (' class="text"' if is_text else "") + (
        f' style="color: {_e(colour)}"' if colour else ""
    )
    return f"<{tag}{attrs}>{_e(text)}</{tag}>"


def _table(t: Table) -> str:
    colours = list(t.colours) + [""] * (len(t.headers) - len(t.colours))
    head = "".join(
        _cell("th", h, i < t.text_columns, c)
        for i, (h, c) in enumerate(zip(t.headers, colours, strict=True))
    )
    body = "".join(
        "<tr>" + "".join(_cell("td", c, i < t.text_columns) for i, c in enumerate(row)) + "</tr>"
        for row in t.rows
    )
    caption = f"<caption>{_e(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.path.read_bytes()).decode("ascii")
    caption = f"<figcaption>{_e(f.caption)}</figcaption>" if f.caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(f.alt)}">{caption}</figure>'


def _block(b: Block) -> str:
    if isinstance(b, Para):
        strong = f"<strong>{_e(b.strong)}</strong> " if b.strong else ""
        return f"<p>{strong}{_e(b.text)}</p>"
    if isinstance(b, Notice):
        level = "warning" if b.level == "warning" else "info"
        label = "Warning:" if level == "warning" else "Note:"
        return f'<div class="notice {level}"><strong>{label}</strong> {_e(b.text)}</div>'
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        return _figure(b)
    if isinstance(b, Pre):
        title = f"<p><strong>{_e(b.title)}</strong></p>" if b.title else ""
        return f"{title}<pre>{_e(b.text)}</pre>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in b.items) + "</ul>"
    raise TypeError(f"unknown block {type(b).__name__}")


def render(doc: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(doc.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(doc.title)}</h1>",
    ]
    if doc.subtitle:
        parts.append(f'<p class="subtitle">{_e(doc.subtitle)}</p>')
    parts += [_block(n) for n in doc.notices]
    for section in doc.sections:
        parts.append(f"<h2>{_e(section.title)}</h2>")
        parts += [_block(b) for b in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
