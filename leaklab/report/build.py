"""Build a report: read and analyse the runs, draw the charts, compose the content,
write ``report.md``, ``report.html``, the PNG charts and ``summary.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaklab import store
from leaklab.report import chains, charts, compose, html, markdown, selection, summary
from leaklab.report import limits as limits_mod
from leaklab.report.subject import ReportRun, load

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"


@dataclass
class ReportResult:
    out: Path
    files: list[Path]
    summary: dict[str, Any]

    @property
    def html(self) -> Path:
        return self.out / REPORT_HTML

    @property
    def markdown(self) -> Path:
        return self.out / REPORT_MD


def default_name(sel: selection.Selection) -> str:
    """``<run dir name>`` for one run, ``<scenario>-<before>-vs-<after>`` for a pair."""
    if not sel.pair:
        return sel.runs[0].name
    metas = [store.read_meta(p) for p in sel.runs]
    before, after = (str(m.get("variant") or p.name) for m, p in zip(metas, sel.runs, strict=True))
    scenario = str(metas[0].get("scenario") or "runs")
    return store.slug(f"{scenario}-{before}-vs-{after}")


def _previous_charts(out: Path) -> list[Path]:
    """Charts a previous report in ``out`` wrote (only those: nothing else is removed)."""
    try:
        old = json.loads((out / SUMMARY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = old.get("charts") if isinstance(old, dict) else None
    return [out / Path(str(n)).name for n in names or [] if str(n).endswith(".png")]


def _draw(runs: list[ReportRun], out: Path) -> compose.Charts:
    drawn = compose.Charts()
    if len(runs) == 2:
        drawn.before_after = charts.before_after(runs[0], runs[1], out / "before-after.png")
    for r in runs:
        memory = charts.memory_over_time(r, out / f"memory-{r.role}.png")
        if memory is not None:
            drawn.memory[r.role] = memory
    drawn.growth_rates = charts.growth_rates(runs, out / "growth-rates.png")
    for r in runs:
        if r.recycling is not None:
            drawn.sawtooth[r.role] = charts.sawtooth(r, out / f"sawtooth-{r.role}.png")
        top = charts.top_growth(r, out / f"top-growth-{r.role}.png")
        if top is not None:
            drawn.top_growth[r.role] = top
        drawn.chain_graphs[r.role] = [
            chains.copy_graph(r, c, out, i) for i, c in enumerate(r.attribution.chains, 1)
        ]
    return drawn


def build(
    sel: selection.Selection,
    out: str | os.PathLike[str] | None = None,
    *,
    reports_root: str = "reports",
    limit: int | None = None,
    warmup: Any = None,
) -> ReportResult:
    """Write the report for ``sel`` into ``out`` (default ``reports/<name>/``)."""
    roles = ("before", "after") if sel.pair else ("run",)
    runs = [load(path, role, warmup=warmup) for path, role in zip(sel.runs, roles, strict=True)]
    out_dir = Path(out) if out is not None else Path(reports_root) / default_name(sel)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in _previous_charts(out_dir):
        stale.unlink(missing_ok=True)
    limits = limits_mod.limits_for(runs, limit)
    plan = limits_mod.recycling_plan(runs, limit)
    for r in runs:
        r.prediction = limits_mod.predict(r, plan)
    drawn = _draw(runs, out_dir)
    doc = compose.compose(runs, drawn, limits, plan)
    (out_dir / REPORT_MD).write_text(markdown.render(doc), encoding="utf-8")
    (out_dir / REPORT_HTML).write_text(html.render(doc), encoding="utf-8")
    data = summary.summary(doc, runs, limits)
    (out_dir / SUMMARY_JSON).write_text(
        json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    files = [out_dir / REPORT_MD, out_dir / REPORT_HTML, out_dir / SUMMARY_JSON] + [
        f.path for f in doc.figures()
    ]
    return ReportResult(out_dir, files, data)
