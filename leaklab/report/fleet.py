"""The fleet report: every run of a fleet folder ranked, the top leakers' curves, and the
distribution of growth rates across the fleet (``leaklab report --fleet DIR``).

Only the runs drawn are read again for their samples; the rest are held as ranked rows
(:mod:`leaklab.analysis.fleet`), so the report's memory does not grow with the fleet.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from leaklab import store, units
from leaklab.analysis.fleet import ERROR, FleetRow
from leaklab.kinds import Verdict as Label
from leaklab.report import html as html_mod
from leaklab.report import markdown, style
from leaklab.report.charts import plain
from leaklab.report.document import Bullets, Document, Figure, Para, Section, Table
from leaklab.report.plotdata import envelope_by_process

#: Okabe-Ito colours for the top leakers' curves.
PALETTE = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _short(text: str, width: int = 48) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _num(value: float, fmt: str = "{:+,.2f}") -> str:
    return units.NA if not math.isfinite(value) else fmt.format(value)


def _save(fig: MplFigure, path: Path) -> Path:
    fig.savefig(path, dpi=style.DPI, bbox_inches="tight", metadata={"Software": None})
    return path


def top_curves(rows: list[FleetRow], path: Path, top: int) -> Path | None:
    """RSS over wall-clock time of the ``top`` first-ranked runs, one line each."""
    import matplotlib

    chosen = [r for r in rows if r.verdict != ERROR][:top]
    if not chosen:
        return None
    curves = []
    for row in chosen:
        run = store.read_run(row.run, warn=False)
        t = np.asarray(run.columns.get("t", []), dtype=float)
        rss = np.asarray(run.columns.get("rss", []), dtype=float)
        generation = np.asarray(run.columns.get("generation") or np.zeros(len(t)), dtype=float)
        try:
            t0 = datetime.fromisoformat(
                str(run.meta.get("start")).replace("Z", "+00:00")
            ).timestamp()
        except ValueError:
            t0 = 0.0
        curves.append(
            (row, *envelope_by_process(t + t0, rss / style.MB, generation, max_points=1500))
        )
    start = min((float(np.nanmin(x)) for _, x, _ in curves if len(x)), default=0.0)
    end = max((float(np.nanmax(x)) for _, x, _ in curves if len(x)), default=0.0)
    scale = style.time_scale(end - start)
    with matplotlib.rc_context(style.RC):
        fig = MplFigure(figsize=style.WIDE, layout="constrained")
        ax = fig.subplots()
        for i, (row, x, y) in enumerate(curves):
            ax.plot(
                (x - start) / scale.seconds,
                y,
                color=PALETTE[i % len(PALETTE)],
                linewidth=1.2,
                label=plain(
                    f"#{i + 1} {_short(row.name, 40)} ({row.verdict}, {_num(row.mb_per_hour)} MB/h)"
                ),
            )
        ax.set_title(f"The {len(curves)} first-ranked series")
        ax.set_ylabel("memory (MB)")
        ax.set_xlabel(
            f"time since {store.iso(datetime.fromtimestamp(start, timezone.utc))} ({scale.unit})"
        )
        ax.legend(loc="upper left", fontsize=8)
        return _save(fig, path)


def rate_distribution(rows: list[FleetRow], path: Path) -> Path | None:
    """Histogram of growth per hour across the fleet, LEAK stacked over the rest."""
    import matplotlib

    rates = [(r.mb_per_hour, r.verdict == Label.LEAK) for r in rows if math.isfinite(r.mb_per_hour)]
    if not rates:
        return None
    values = np.array([v for v, _ in rates])
    leak = np.array([flag for _, flag in rates])
    # A symmetric log scale: a fleet's rates span zero to thousands of MB/h.
    threshold = 1.0
    transformed = np.sign(values) * np.log10(1 + np.abs(values) / threshold)
    edges = np.linspace(min(transformed.min(), -0.1), max(transformed.max(), 0.1), 41)
    with matplotlib.rc_context(style.RC):
        fig = MplFigure(figsize=style.WIDE, layout="constrained")
        ax = fig.subplots()
        ax.hist(
            [transformed[~leak], transformed[leak]],
            bins=edges,
            stacked=True,
            color=[style.AFTER, style.BEFORE],
            label=[f"not {Label.LEAK}", str(Label.LEAK)],
        )
        ticks = [
            t
            for t in (-1000, -100, -10, -1, 0, 1, 10, 100, 1000, 10000)
            if edges[0] <= np.sign(t) * np.log10(1 + abs(t)) <= edges[-1]
        ]
        ax.set_xticks([np.sign(t) * np.log10(1 + abs(t)) for t in ticks], [f"{t:g}" for t in ticks])
        ax.set_xlabel("growth (MB/h, symmetric log scale)")
        ax.set_ylabel("series")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"Growth rates of {len(values)} series")
        ax.legend()
        return _save(fig, path)


def _table(rows: list[FleetRow], top: int) -> Table:
    body = []
    for i, r in enumerate(rows[:top], 1):
        lo, hi = r.ci95_mb_per_hour
        body.append(
            [
                str(i),
                r.name,
                r.verdict,
                _num(r.mb_per_hour),
                units.format_interval(_num(lo), _num(hi)),
                _num(r.pct_per_hour, "{:+,.1f}"),
                _num(r.last_mb, "{:,.1f}"),
                str(r.generations),
            ]
        )
    caption = f"The first {min(top, len(rows))} of {len(rows)} series." if len(rows) > top else ""
    return Table(
        ["#", "series", "verdict", "MB/h", "95% CI (MB/h)", "%/h", "now (MB)", "generations"],
        body,
        caption=caption,
        key="ranking",
        text_columns=3,
    )


def compose(
    rows: list[FleetRow], root: Path, curves: Path | None, rates: Path | None, top: int
) -> Document:
    verdicts = Counter(r.verdict for r in rows)
    leaks = [r for r in rows if r.verdict == Label.LEAK]
    summary = ", ".join(f"{n} {label}" for label, n in verdicts.most_common())
    doc = Document(title=f"Fleet: {root.name}", subtitle=f"{len(rows)} series from {root}")
    overview = Section(
        "Overview", [Para(summary, strong=f"{len(leaks)} of {len(rows)} series leak.")]
    )
    if leaks:
        worst = leaks[0]
        overview.blocks.append(
            Para(
                f"{worst.name}: {_num(worst.mb_per_hour)} MB/h "
                f"({_num(worst.pct_per_hour, '{:+,.1f}')}%/h). {worst.reason}",
                strong="Fastest leak:",
            )
        )
    doc.sections.append(overview)
    ranking = Section(
        "Ranking",
        [
            Para(
                "LEAK first, then by growth per hour; each interval is the 95% "
                "confidence interval of the growth."
            ),
            _table(rows, top),
        ],
    )
    errors = [r for r in rows if r.verdict == ERROR]
    if errors:
        ranking.blocks.append(Bullets([f"{r.run}: {r.reason}" for r in errors]))
    doc.sections.append(ranking)
    charts = Section("Charts", [])
    if curves is not None:
        charts.blocks.append(
            Figure(
                curves,
                "memory of the first-ranked series over time",
                "Each line breaks where its process restarted.",
            )
        )
    if rates is not None:
        charts.blocks.append(Figure(rates, "distribution of growth rates across the fleet"))
    if charts.blocks:
        doc.sections.append(charts)
    return doc


def build(
    rows: list[FleetRow], root: Path, out: Path, *, top: int = 20, curves: int = 8
) -> dict[str, Any]:
    """Write ``report.md``, ``report.html``, ``summary.json`` and the charts into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    curves_png = top_curves(rows, out / "fleet-top-curves.png", curves)
    rates_png = rate_distribution(rows, out / "fleet-rates.png")
    doc = compose(rows, root, curves_png, rates_png, top)
    (out / "report.md").write_text(markdown.render(doc), encoding="utf-8")
    (out / "report.html").write_text(html_mod.render(doc), encoding="utf-8")
    summary = {
        "fleet": str(root),
        "runs": len(rows),
        "verdicts": dict(Counter(r.verdict for r in rows)),
        "charts": [p.name for p in (curves_png, rates_png) if p is not None],
        "rows": [dict(rank=i, **r.to_dict()) for i, r in enumerate(rows, 1)],
    }
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return summary
