"""A retention chain drawn with Graphviz: ``.dot`` text always, a ``.png`` where ``dot`` is
installed.

The ``retention`` probe draws each chain it finds as it records it (the report copies the
PNG from the run); a chain read back from a run (:func:`leaklab.analysis.retention.chains_of`)
can be drawn again where Graphviz was missing. It imports nothing of leaklab: any layer may
import it.

Labels are escaped for DOT's quoted strings: type names may contain anything,
``<script>`` included, and a key's repr may contain quotes or backslashes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "")
    return f'"{escaped}"'


def to_dot(chain: dict[str, Any]) -> str:
    """Graphviz text for one chain: the root on top, one node per hop, edges named by attribute
    or key."""
    lines = [
        "digraph retention {",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    hops = chain.get("hops") or []
    for i, hop in enumerate(hops):
        label = str(hop.get("label", "?"))
        if i == 0:
            root = _quote(label + "\n(" + str(chain.get("root_kind") or "root") + ")")
            lines.append(f'  n{i} [label={root}, style=filled, fillcolor="#dbe9f6"];')
        elif i == len(hops) - 1:
            lines.append(f'  n{i} [label={_quote(label)}, style=filled, fillcolor="#f6dbdb"];')
        else:
            lines.append(f"  n{i} [label={_quote(label)}];")
    for i in range(1, len(hops)):
        via = hops[i].get("via")
        attrs = f" [label={_quote(str(via))}]" if via else ""
        lines.append(f"  n{i - 1} -> n{i}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_png(chain: dict[str, Any], dot_path: Path, timeout_s: float = 30.0) -> Path | None:
    """Write ``dot_path`` (Graphviz text) and, where ``dot`` is installed, the PNG next to it."""
    dot_path.write_text(to_dot(chain), encoding="utf-8")
    dot = shutil.which("dot")
    if dot is None:
        return None
    png = dot_path.with_suffix(".png")
    try:
        subprocess.run(
            [dot, "-Tpng", "-o", str(png), str(dot_path)],
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return png
