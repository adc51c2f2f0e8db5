"""The report's charts, drawn with matplotlib's object API on the Agg canvas (no
pyplot, no global backend switch, safe next to a notebook's own plots).

Every chart reads the run's samples for the curves and the analysis for every
line that carries a number (trend, rate, interval, limit). Long runs are thinned
for drawing only (:mod:`leaklab.report.plotdata`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from leaklab import units
from leaklab.analysis.growth import Growth
from leaklab.kinds import EventKind
from leaklab.report import fmt, style
from leaklab.report.plotdata import envelope_by_process
from leaklab.report.subject import ReportRun

HEAP_SIGNALS = ("traced", "blocks")
HEAP_COLUMNS = {"traced": "traced", "blocks": "allocated_blocks"}
HEAP_TITLES = {"traced": "Python heap: traced memory", "blocks": "Python objects: allocated blocks"}


def plain(text: str) -> str:
    """Text from a run shown as written: matplotlib would read ``$...$`` as math."""
    return str(text).replace("$", r"\$")


def _column(r: ReportRun, name: str) -> np.ndarray:
    values = r.run.columns.get(name)
    n = r.run.n_samples
    return np.asarray(values, dtype=float) if values else np.full(n, np.nan)


def heap_signal(r: ReportRun) -> str | None:
    """The Python-level signal a run has: traced bytes when traced, else allocated blocks."""
    for signal in HEAP_SIGNALS:
        if signal in r.analysis.growth and np.isfinite(_column(r, HEAP_COLUMNS[signal])).any():
            return signal
    return None


def _scale_of(signal: str) -> tuple[float, str]:
    """Divisor and axis unit of a signal on a chart."""
    if signal == "blocks":
        return 1e3, "thousand blocks"
    return style.MB, "MB"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=style.DPI, bbox_inches="tight", metadata={"Software": None})
    return path


def _new(
    figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw: object
) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def trend_label(g: Growth) -> str:
    """The rate the analysis fitted, as the legend shows it: ``fitted trend`` (``fitted trend
    within each process`` for a recycled run), the growth per hour, then per step where steps
    are known (``fitted trend 8,010 MB/h, 1.11 KB/step``)."""
    parts = [fmt.mb_per_hour(g)]
    if units.finite(g.per_step):
        parts.append(fmt.per_step(g))
    where = " within each process" if g.generations > 1 else ""
    return f"fitted trend{where} " + ", ".join(parts)


def _trend_lines(r: ReportRun, signal: str) -> list[tuple[float, float, float, float]]:
    """(t_start, t_end, value at t_start, slope per second) of each fitted line: the analysis's
    one line, or for a recycled run's RSS one line per process generation."""
    g = r.analysis.growth.get(signal)
    if g is None:
        return []
    if g.generations == 1:
        ok = units.finite(g.per_s) and units.finite(g.baseline)
        return [(g.t_start, g.t_end, g.baseline, g.per_s)] if ok else []
    if signal == "rss" and r.recycling is not None:
        return [
            (s.t_start, s.t_end, s.baseline, s.bytes_per_s)
            for s in r.recycling.generation_slopes
            if units.finite(s.bytes_per_s) and units.finite(s.baseline)
        ]
    return []


def _trend(
    ax: Axes, r: ReportRun, signal: str, x_scale: float, y_scale: float, colour: str, label: str
) -> None:
    """The fitted line(s) of ``signal``; only the first carries the label."""
    for i, (t0, t1, y0, slope) in enumerate(_trend_lines(r, signal)):
        x = np.array([t0, t1])
        y = y0 + slope * (x - t0)
        ax.plot(
            x / x_scale,
            y / y_scale,
            linestyle="--",
            linewidth=1.8,
            color=colour,
            alpha=0.95,
            label=label if i == 0 else None,
        )


def _shade_warmup(ax: Axes, start: float, end: float, x_scale: float, label: bool = True) -> None:
    if units.finite(end) and end > start:
        ax.axvspan(
            start / x_scale,
            end / x_scale,
            color=style.WARMUP,
            alpha=0.18,
            linewidth=0,
            label="warm-up (not analysed)" if label else None,
        )


def _tick(value: float, _pos: int | None = None) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.4g}"


def _count_tick(value: float, _pos: int | None = None) -> str:
    """``1.5M``, ``250k``: step counts that stay short on a crowded axis."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:,.4g}{suffix}"
    return f"{value:,.0f}"


def _number_ticks() -> FuncFormatter:
    return FuncFormatter(_tick)


def _axis_formatters(ax: Axes, y_unit: str) -> None:
    ax.yaxis.set_major_formatter(_number_ticks())
    ax.set_ylabel(y_unit)


def _stepped(r: ReportRun) -> np.ndarray:
    """Rows after setup (a step count exists): the part of the run a reader compares."""
    return np.isfinite(_column(r, "steps"))


def _line(r: ReportRun, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Points of ``y`` against ``x`` to draw: rows after each process's setup (a step
    count exists), broken between process generations; every row when no setup finished."""
    stepped = _stepped(r)
    if not stepped.any():
        stepped = np.ones_like(stepped)
    process = np.nan_to_num(_column(r, "generation"))
    return envelope_by_process(_column(r, x)[stepped], _column(r, y)[stepped], process[stepped])


def _excluded_spans(r: ReportRun) -> list[tuple[float, float]]:
    """Stretches of the run the analysis left out (setup, the warm-up of each process), as
    (start, end) times: from the first row of a stretch to the first analysed row after it."""
    t = _column(r, "t")
    mask = np.asarray(r.analysis.window.mask, dtype=bool)
    if len(t) == 0 or len(mask) != len(t):
        return []
    spans: list[tuple[float, float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate(([1], mask.astype(int), [1]))))
    for a, b in zip(edges[0::2], edges[1::2], strict=True):  # [a, b) rows not analysed
        end = t[b] if b < len(t) else t[-1]
        spans.append((float(t[a]), float(end)))
    return spans


def memory_over_time(r: ReportRun, path: Path) -> Path | None:
    """RSS (with USS) on top, the Python-level signal below, the stretches not analysed
    shaded, the fitted trend of each with its rate in the legend (None: no sample to draw)."""
    heap = heap_signal(r)
    t = _column(r, "t")
    if not np.isfinite(_column(r, "rss")).any():
        return None
    ts = style.time_scale(float(np.nanmax(t)) if len(t) else 0.0)
    nrows = 2 if heap else 1
    spans = _excluded_spans(r)
    with matplotlib.rc_context(style.RC):
        fig, axes = _new(style.TALL if heap else style.WIDE, nrows, 1, sharex=True)
        fig.suptitle(f"Memory over time: {plain(r.name)}", fontweight="bold")
        for ax in axes[:, 0]:
            for i, (a, b) in enumerate(spans):
                _shade_warmup(ax, a, b, ts.seconds, label=i == 0 and ax is axes[0, 0])
        top = axes[0, 0]
        for col, colour, name, width in (
            ("uss", style.USS, "USS", 1.0),
            ("rss", r.colour, "RSS", 1.4),
        ):
            x, y = _line(r, "t", col)
            if len(x):
                top.plot(x / ts.seconds, y / style.MB, color=colour, linewidth=width, label=name)
        if "rss" in r.analysis.growth:
            _trend(
                top,
                r,
                "rss",
                ts.seconds,
                style.MB,
                "black",
                "RSS " + trend_label(r.analysis.growth["rss"]),
            )
        top.set_title("Process memory (measured from outside)", loc="left")
        _axis_formatters(top, "MB")
        if heap:
            bottom = axes[1, 0]
            div, unit = _scale_of(heap)
            x, y = _line(r, "t", HEAP_COLUMNS[heap])
            name = HEAP_TITLES[heap].split(": ")[1]
            if not _trend_lines(r, heap):  # no line to carry the rate: the series does
                name += f" ({trend_label(r.analysis.growth[heap])})"
            bottom.plot(x / ts.seconds, y / div, color=style.HEAP, linewidth=1.4, label=name)
            _trend(
                bottom,
                r,
                heap,
                ts.seconds,
                div,
                (0.0, 0.3, 0.2),
                f"{name} {trend_label(r.analysis.growth[heap])}",
            )
            bottom.set_title(HEAP_TITLES[heap], loc="left")
            _axis_formatters(bottom, unit)
        axes[-1, 0].set_xlabel(ts.label)
        # One legend under the panels: it never hides a curve.
        handles, labels = [], []
        for ax in axes[:, 0]:
            h, lab = ax.get_legend_handles_labels()
            handles += h
            labels += lab
        fig.legend(handles, labels, loc="outside lower center", ncol=2)
        return _save(fig, path)


def before_after(before: ReportRun, after: ReportRun, path: Path) -> Path:
    """RSS of both runs on the same axes: against time (left) and against steps (right)."""
    runs = (before, after)
    t_max = max(float(np.nanmax(_column(r, "t"))) if r.run.n_samples else 0.0 for r in runs)
    ts = style.time_scale(t_max)
    with matplotlib.rc_context(style.RC):
        fig, axes = _new(style.WIDE, 1, 2, sharey=True)
        fig.suptitle(f"RSS before and after: {plain(before.scenario)}", fontweight="bold")
        by_time, by_steps = axes[0, 0], axes[0, 1]
        warm_t = max(
            (r.analysis.window.t_start for r in runs if units.finite(r.analysis.window.t_start)),
            default=math.nan,
        )
        warm_s = max(
            (
                r.analysis.window.steps_start
                for r in runs
                if units.finite(r.analysis.window.steps_start)
            ),
            default=math.nan,
        )
        _shade_warmup(by_time, 0.0, warm_t, ts.seconds)
        _shade_warmup(by_steps, 0.0, warm_s, 1.0, label=False)
        for r in runs:
            g = r.analysis.growth.get("rss")
            x, y = _line(r, "t", "rss")
            by_time.plot(
                x / ts.seconds, y / style.MB, color=r.colour, linewidth=1.6, label=plain(r.label)
            )
            if g is not None:
                _trend(
                    by_time, r, "rss", ts.seconds, style.MB, r.colour, f"{r.role} {trend_label(g)}"
                )
            x, y = _line(r, "steps", "rss")
            by_steps.plot(x, y / style.MB, color=r.colour, linewidth=1.6, label=plain(r.label))
        by_time.set_title("by time", loc="left")
        by_time.set_xlabel(ts.label)
        by_time.set_ylabel("RSS (MB)")
        by_time.set_ylim(bottom=0)
        by_time.yaxis.set_major_formatter(_number_ticks())
        by_steps.set_title("by steps completed", loc="left")
        by_steps.set_xlabel("steps completed")
        by_steps.xaxis.set_major_formatter(FuncFormatter(_count_tick))
        # One legend under both panels (it never hides a curve): runs in the left column,
        # their fitted trends on the right, the warm-up last.
        handles = dict(zip(*reversed(by_time.get_legend_handles_labels()), strict=True))
        order = (
            [plain(r.label) for r in runs]
            + [k for k in handles if k.startswith("warm-up")]
            + [k for k in handles if "trend" in k]
        )
        order = [k for k in order if k in handles]
        fig.legend([handles[k] for k in order], order, loc="outside lower center", ncol=2)
        return _save(fig, path)


def _rate_point(
    r: ReportRun, signal: str, hourly: bool
) -> tuple[float, float, float, float, str] | None:
    """(value, lo, hi, material threshold, text) on the panel's scale, or None."""
    g = r.analysis.growth.get(signal)
    if g is None:
        return None
    material = r.analysis.thresholds.material_rate(g)  # units/s
    if hourly:
        scale = 3600 / style.MB
        value, (lo, hi), text = g.per_s, g.ci95, fmt.mb_per_hour(g)
        threshold = material * scale
    else:
        scale = 1.0
        value, (lo, hi), text = g.per_step, g.ci95_per_step, fmt.per_step(g)
        per_s = g.steps_per_s
        threshold = material / per_s if units.finite(per_s) and per_s > 0 else math.nan
    if not units.finite(value):
        return None
    return value * scale, lo * scale, hi * scale, threshold, text


#: Above this ratio between the largest rate and the leak threshold, the rate axis turns
#: symmetric-log.
SYMLOG_RATIO = 50


def growth_rates(runs: Sequence[ReportRun], path: Path) -> Path | None:
    """Each run's growth with its 95% interval: RSS per hour (left), the Python-level
    signal per step (right); a grey band spans the rates the verdict does not count as a leak
    (None: no run has a rate)."""
    if all(_rate_point(r, "rss", True) is None for r in runs):
        return None
    panels: list[tuple[str, str, bool]] = [("rss", "RSS growth (MB/h)", True)]
    heaps = [heap_signal(r) for r in runs]
    heap = next((h for h in heaps if h), None)
    if heap and all(h in (heap, None) for h in heaps):
        panels.append(
            (
                heap,
                "traced memory growth (bytes/step)"
                if heap == "traced"
                else "allocated blocks per step",
                False,
            )
        )
    with matplotlib.rc_context(style.RC):
        fig, axes = _new((10.0, 1.4 + 0.75 * len(runs)), 1, len(panels), sharey=True)
        fig.suptitle("Growth rate per run, with 95% confidence interval", fontweight="bold")
        ypos = np.arange(len(runs))[::-1]
        for (signal, title, hourly), ax in zip(panels, axes[0], strict=True):
            xs: list[float] = [0.0]
            thresholds: list[float] = []
            for y, r in zip(ypos, runs, strict=True):
                point = _rate_point(r, signal, hourly)
                if point is None:
                    ax.annotate(
                        "not measured",
                        (0, y),
                        xytext=(6, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=9,
                        color=style.MUTED,
                    )
                    continue
                value, lo, hi, threshold, text = point
                err = None
                if units.finite(lo) and units.finite(hi):
                    err = [[max(value - lo, 0.0)], [max(hi - value, 0.0)]]
                    xs += [lo, hi]
                xs.append(value)
                ax.errorbar(
                    [value],
                    [y],
                    xerr=err,
                    fmt="o",
                    color=r.colour,
                    ecolor=r.colour,
                    elinewidth=2.5,
                    capsize=6,
                    markersize=8,
                    zorder=3,
                )
                right = hi if err is not None else value
                ax.annotate(
                    text,
                    (right, y),
                    xytext=(10, 0),
                    textcoords="offset points",
                    ha="left",
                    va="center",
                    fontsize=9,
                    color=r.colour,
                    fontweight="bold",
                )
                if units.finite(threshold) and threshold > 0:
                    xs.append(threshold)
                    thresholds.append(threshold)
                    ax.fill_betweenx(
                        [y - 0.32, y + 0.32],
                        0,
                        threshold,
                        color=style.WARMUP,
                        alpha=0.3,
                        linewidth=0,
                        label="below the leak threshold" if y == ypos[0] else None,
                        zorder=1,
                    )
            lo_x, hi_x = min(xs), max(xs)
            linthresh = min(thresholds, default=0.0)
            if linthresh > 0 and max(abs(lo_x), hi_x) > SYMLOG_RATIO * linthresh:
                # Rates orders of magnitude apart: linear up to the leak threshold, logarithmic
                # above, so a fixed run's small rate and its threshold stay visible next to a
                # leak's.
                ax.set_xscale("symlog", linthresh=linthresh, linscale=1.5)
                ax.set_xlim(-0.15 * linthresh if lo_x >= -linthresh else lo_x * 3, hi_x * 12)
                decades = 10.0 ** np.arange(
                    math.ceil(math.log10(linthresh * 1.5)), math.ceil(math.log10(hi_x * 12))
                )
                ax.set_xticks([0.0, *decades])
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                ax.set_xlabel(
                    "linear up to the leak threshold, logarithmic above",
                    fontsize=8,
                    color=style.MUTED,
                )
            else:
                span = hi_x - lo_x or 1.0
                ax.set_xlim(
                    lo_x - 0.08 * span, hi_x + 0.45 * span
                )  # room for the value on the right
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_title(title, loc="left")
            ax.set_yticks(ypos, [plain(r.label) for r in runs])
            ax.set_ylim(-0.6, len(runs) - 0.2)
            ax.grid(axis="y", visible=False)
            ax.xaxis.set_major_formatter(_number_ticks())
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower right")
        return _save(fig, path)


def _restart_events(r: ReportRun) -> list[dict]:
    return [e for e in r.run.events_of(EventKind.RESTART) if units.finite(e.get("t"))]


def sawtooth(r: ReportRun, path: Path) -> Path:
    """A recycled run: RSS of each process generation (gaps are the time no process
    served), a marker at every restart, each generation's fitted growth, the limit."""
    m = r.recycling
    assert m is not None
    t = _column(r, "t")
    ts = style.time_scale(float(np.nanmax(t)) if len(t) else 0.0)
    generations = np.unique(np.nan_to_num(_column(r, "generation")))
    with matplotlib.rc_context(style.RC):
        fig, axes = _new(style.WIDE)
        ax = axes[0, 0]
        x, y = _line(r, "t", "rss")
        ax.plot(
            x / ts.seconds,
            y / style.MB,
            color=r.colour,
            linewidth=1.5,
            label=f"RSS ({len(generations)} process{'es' if len(generations) > 1 else ''})",
        )
        for i, s in enumerate(m.generation_slopes):
            if not (units.finite(s.bytes_per_s) and units.finite(s.baseline)):
                continue
            x = np.array([s.t_start, s.t_end])
            y = s.baseline + s.bytes_per_s * (x - s.t_start)
            ax.plot(
                x / ts.seconds,
                y / style.MB,
                color="black",
                linestyle="--",
                linewidth=1.3,
                label=f"growth per process (median {units.format_mb_per_hour(m.leak_bytes_per_s)})"
                if i == 0
                else None,
            )
        restarts = _restart_events(r)
        for kind, marker, colour in (("memory", "v", style.RESTART), ("crash", "X", style.LIMIT)):
            hits = [e for e in restarts if (e.get("reason") or "memory") == kind]
            if not hits:
                continue
            xs = np.array([float(e["t"]) for e in hits]) / ts.seconds
            for x in xs:
                ax.axvline(x, color=colour, linestyle=":", linewidth=1, alpha=0.8)
            ys = [
                float(e["rss"]) / style.MB if units.finite(e.get("rss")) else math.nan for e in hits
            ]
            what = "at the limit" if kind == "memory" else "after a crash"
            ax.plot(
                xs,
                ys,
                linestyle="none",
                marker=marker,
                markersize=8,
                color=colour,
                label=f"restart {what} ({len(hits)})",
            )
        if units.finite(m.limit):
            ax.axhline(
                m.limit / style.MB,
                color=style.LIMIT,
                linestyle="--",
                linewidth=1.6,
                label=(
                    f"limit {units.format_size(m.limit)}, checked every "
                    f"{units.format_duration(m.check_interval_s)}"
                ),
            )
        rate = (
            f", {units.sig(m.restarts_per_hour)} restarts per hour"
            if units.finite(m.restarts_per_hour)
            else ""
        )
        fig.suptitle(f"Recycling on a memory limit: {plain(r.label)}{rate}", fontweight="bold")
        ax.set_xlabel(ts.label)
        ax.set_ylabel("RSS (MB)")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(_number_ticks())
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2)
        return _save(fig, path)


def _short(text: str, width: int = 46) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _site_label(site: dict) -> str:
    """``named_leaks.py:15  self.payload = bytearray(payload)``: the file's name, not its
    folders."""
    where = str(site.get("site") or "")
    if site.get("file"):
        where = f"{Path(str(site['file'])).name}:{site.get('line')}"
    return f"{where}  {site.get('code') or ''}".strip()


def top_growth(r: ReportRun, path: Path) -> Path | None:
    """The growing types (objects per step) and allocation sites (bytes per step), largest on
    top."""
    types = [
        (str(t.get("type")), t.get("per_step"))
        for t in r.attribution.top_types
        if units.finite(t.get("per_step"))
    ]
    sites = [
        (_site_label(s), s.get("bytes_per_step"))
        for s in r.attribution.top_sites
        if units.finite(s.get("bytes_per_step"))
    ]
    panels = [
        (title, items, unit)
        for title, items, unit in (
            ("Growing types", types, "objects per step"),
            ("Growing allocation sites", sites, "bytes per step"),
        )
        if items
    ]
    if not panels:
        return None
    rows = max(len(items) for _, items, _ in panels)
    with matplotlib.rc_context(style.RC):
        fig, axes = _new((11.0, 1.5 + 0.45 * rows), 1, len(panels))
        fig.suptitle(f"What grows: {plain(r.label)}", fontweight="bold")
        for (title, items, unit), ax in zip(panels, axes[0], strict=True):
            labels = [plain(_short(name)) for name, _ in items][::-1]
            values = [float(v) for _, v in items][::-1]
            bars = ax.barh(range(len(values)), values, color=r.colour, alpha=0.85, height=0.6)
            ax.bar_label(bars, labels=[f" {units.sig(v)}" for v in values], fontsize=9)
            ax.set_yticks(range(len(values)), labels, fontsize=9)
            ax.set_title(title, loc="left")
            ax.set_xlabel(unit)
            ax.set_xlim(0, max(values) * 1.25 if max(values) > 0 else 1)
            ax.grid(axis="y", visible=False)
            ax.xaxis.set_major_formatter(_number_ticks())
        return _save(fig, path)
