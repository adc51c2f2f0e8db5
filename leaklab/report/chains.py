"""Retention chains as text (and the probe's own graph, where it drew one): from a
root the program keeps (a module global, a class attribute) to an instance of a
growing type."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from leaklab.report.subject import ReportRun

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT_KINDS = {
    "module": "module global",
    "class": "class attribute",
    "state": "scenario state",
    "frame": "running frame",
}


def chain_text(chain: dict[str, Any]) -> str:
    """One chain, one hop per line, each under the one that holds it::

    named_leaks._CACHE  (module global)
      -> dict
        -> [5973] Widget
    """
    hops = chain.get("hops") or []
    if not chain.get("found") or not hops:
        reason = "search timed out" if chain.get("timed_out") else "no chain to a root found"
        return f"{chain.get('type')}: {reason}"
    kind = ROOT_KINDS.get(str(chain.get("root_kind")), str(chain.get("root_kind") or "root"))
    lines = [f"{hops[0].get('label')}  ({kind})"]
    for depth, hop in enumerate(hops[1:], start=1):
        via = f"{hop.get('via')} " if hop.get("via") else ""
        lines.append("  " * depth + f"-> {via}{hop.get('label')}")
    instances = chain.get("instances")
    if instances:
        lines.append(f"({instances} instances of {chain.get('type')} sampled)")
    return "\n".join(lines)


def copy_graph(r: ReportRun, chain: dict[str, Any], out: Path, index: int) -> Path | None:
    """The probe's PNG of ``chain``, copied next to the report, when it is a PNG inside the run."""
    name = chain.get("png")
    if not name:
        return None
    run_dir = r.path.resolve()
    source = (run_dir / str(name)).resolve()
    if not source.is_relative_to(run_dir) or not source.is_file():
        return None  # never read outside the run directory
    with open(source, "rb") as fh:
        if fh.read(len(PNG_MAGIC)) != PNG_MAGIC:
            return None
    target = out / f"chain-{r.role}-{index}.png"
    shutil.copyfile(source, target)
    return target
