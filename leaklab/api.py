"""The notebook API: runs as pandas DataFrames, growth and verdicts, inline plots.

::

    import leaklab
    run = leaklab.load_run("runs/20250101T000000Z-http-agent-leaky")
    run.samples            # DataFrame indexed by t (seconds)
    run.growth()           # one row per signal: per step, per hour, 95% CI, verdict
    run.verdict()          # Verdict(label="LEAK", reasons=[...], ...)
    run.plot()             # matplotlib Figure
    run.requests           # --serve runs: one row per request (latency, status, error)
    run.recycling()        # --recycle runs: restarts/h, downtime, success rate, throughput
    run.plan("150MB")      # predicted cost of recycling at a limit
    leaklab.compare(before, after)   # before/after table and plot

pandas and matplotlib are imported here, never on the recording path.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from leaklab import store, units
from leaklab.analysis import RunAnalysis, Verdict, analyze
from leaklab.analysis.growth import COLUMN_OF, Growth
from leaklab.analysis.recycling import (
    Prediction,
    RecyclingMetrics,
    analyze_recycling,
    predict_from_run,
)
from leaklab.kinds import Verdict as Label
from leaklab.report.text import format_summary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_LABEL_COLOURS = {
    Label.LEAK: "#c0392b",
    Label.PLATEAU: "#d68910",
    Label.NO_LEAK: "#1e8449",
    Label.INCONCLUSIVE: "#7f8c8d",
}
#: How each run of a comparison is drawn: before dashed, after solid.
_COMPARISON_STYLES = {"before": "--", "after": "-"}


class Run:
    """A recorded run, for notebooks. Reading is lazy: DataFrames are built on first use."""

    def __init__(self, data: store.RunData) -> None:
        self.data = data
        self._samples: pd.DataFrame | None = None
        self._events: pd.DataFrame | None = None
        self._requests: pd.DataFrame | None = None
        self._analysis: RunAnalysis | None = None

    @property
    def path(self) -> Path:
        return self.data.path

    @property
    def meta(self) -> dict[str, Any]:
        return self.data.meta

    @property
    def name(self) -> str:
        variant = self.meta.get("variant")
        return str(self.meta.get("scenario") or self.path.name) + (
            f" [{variant}]" if variant else ""
        )

    @property
    def samples(self) -> pd.DataFrame:
        """One row per sample, indexed by ``t`` (seconds since the start); NaN where missing."""
        if self._samples is None:
            frame = pd.DataFrame(self.data.columns)
            if "t" in frame:
                frame = frame.set_index("t")
            self._samples = frame
        return self._samples

    @property
    def events(self) -> pd.DataFrame:
        """One row per event: ``t``, ``kind`` and each kind's own fields."""
        if self._events is None:
            self._events = pd.DataFrame(
                self.data.events, columns=None if self.data.events else ["t", "kind"]
            )
        return self._events

    @property
    def requests(self) -> pd.DataFrame:
        """Service mode (``--serve``): one row per request the load generator sent, indexed
        by ``t``; empty for a run without one."""
        if self._requests is None:
            frame = pd.DataFrame(self.data.requests)
            self._requests = frame.set_index("t") if "t" in frame else frame
        return self._requests

    def recycling(self) -> RecyclingMetrics:
        """Restarts per hour, downtime, success rate, throughput and each generation's slope."""
        return analyze_recycling(self.data)

    def plan(self, limit: Any, **kwargs: Any) -> Prediction:
        """What recycling at ``limit`` (bytes or ``"150MB"``) would cost, predicted from this
        run."""
        return predict_from_run(
            self.data, units.parse_size(limit), analysis=self.analysis(), **kwargs
        )

    def analysis(self, warmup: Any = None, **kwargs: Any) -> RunAnalysis:
        """The full :class:`~leaklab.analysis.RunAnalysis` (cached for the default options)."""
        if warmup is None and not kwargs:
            if self._analysis is None:
                self._analysis = analyze(self.data)
            return self._analysis
        return analyze(self.data, warmup=warmup, **kwargs)

    def growth(self, warmup: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Growth per signal, one row each."""
        return growth_frame(self.analysis(warmup, **kwargs))

    def verdict(self, warmup: Any = None, **kwargs: Any) -> Verdict:
        return self.analysis(warmup, **kwargs).verdict

    def summary(self) -> str:
        return format_summary(self.analysis())

    def plot(self, signals: tuple[str, ...] | None = None) -> Figure:
        """Each signal against time, the warm-up shaded and the fitted trend drawn."""
        from matplotlib.figure import Figure

        a = self.analysis()
        names = [s for s in (signals or tuple(a.growth)) if s in a.growth]
        byte_signals = [s for s in names if a.growth[s].unit == "bytes"]
        other = [s for s in names if a.growth[s].unit != "bytes"]
        panels = [p for p in (byte_signals, other) if p]
        fig = Figure(figsize=(8, 2.8 * max(len(panels), 1)), layout="constrained")
        axes = fig.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0]
        for ax, group in zip(axes, panels, strict=False):
            for signal in group:
                _plot_signal(ax, self, a.growth[signal])
            ax.legend(loc="upper left", fontsize="small")
            if a.window.source != "none" and math.isfinite(a.window.t_start):
                ax.axvspan(0, a.window.t_start, color="0.9", zorder=0)
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(
            f"{self.name}: {a.verdict.label}", color=_LABEL_COLOURS.get(a.verdict.label, "black")
        )
        return fig

    def __repr__(self) -> str:
        return (
            f"<leaklab.Run {self.name} {self.data.status} {self.data.n_samples} samples: "
            f"{self.verdict().label}>"
        )

    def _repr_html_(self) -> str:
        a = self.analysis()
        table = growth_frame(a).to_html(escape=True, na_rep="n/a", float_format=_num)
        return (
            f"<div><b>{_esc(self.name)}</b> &middot; {_esc(self.data.status)} &middot; "
            f"{self.data.n_samples} samples &middot; "
            f"<code>{_esc(str(self.path))}</code>{_verdict_html(a.verdict)}{table}</div>"
        )


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    return f"{value:,.4g}"


def _verdict_html(v: Verdict) -> str:
    colour = _LABEL_COLOURS.get(v.label, "black")
    reasons = "".join(f"<li>{_esc(r)}</li>" for r in v.reasons)
    return (
        f"<p><b style='color:{colour}'>{_esc(v.label)}</b> (on "
        f"{_esc(v.signal or 'n/a')})</p><ul>{reasons}</ul>"
    )


def _plot_signal(ax: Axes, run: Run, g: Growth) -> None:
    column = COLUMN_OF[g.signal]
    frame = run.samples
    if column not in frame:
        return
    scale, unit = (1e6, "MB") if g.unit == "bytes" else (1.0, "blocks")
    series = frame[column].dropna()
    (line,) = ax.plot(series.index, series.to_numpy() / scale, lw=1, label=g.signal)
    if math.isfinite(g.per_s) and g.generations == 1:
        xs = [g.t_start, g.t_end]
        ax.plot(
            xs,
            [(g.baseline + g.per_s * (x - g.t_start)) / scale for x in xs],
            ls="--",
            color=line.get_color(),
            lw=1.5,
            label=f"{g.signal} trend",
        )
    ax.set_ylabel(unit)


def growth_frame(a: RunAnalysis) -> pd.DataFrame:
    """The analysis' growth as a DataFrame indexed by signal."""
    rows = []
    for name, g in a.growth.items():
        rows.append(
            {
                "signal": name,
                "unit": g.unit,
                "per_step": g.per_step,
                "ci95_step_lo": g.ci95_per_step[0],
                "ci95_step_hi": g.ci95_per_step[1],
                "per_s": g.per_s,
                "ci95_lo": g.ci95[0],
                "ci95_hi": g.ci95[1],
                "mb_per_hour": g.mb_per_hour,
                "pct_per_hour": g.pct_per_hour,
                "baseline": g.baseline,
                "samples": g.n_samples,
                "verdict": a.signal_verdicts[name].label if name in a.signal_verdicts else "",
            }
        )
    columns = [
        "signal",
        "unit",
        "per_step",
        "ci95_step_lo",
        "ci95_step_hi",
        "per_s",
        "ci95_lo",
        "ci95_hi",
        "mb_per_hour",
        "pct_per_hour",
        "baseline",
        "samples",
        "verdict",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("signal")


def load_run(path: str | os.PathLike[str] | store.RunData) -> Run:
    """A run directory as a :class:`Run` (``runs`` or another folder: its latest run)."""
    if isinstance(path, store.RunData):
        return Run(path)
    if not store.is_run_dir(path) and Path(path).is_dir():
        path = store.latest_run(path)
    return Run(store.read_run(path))


def _as_run(value: Any) -> Run:
    return value if isinstance(value, Run) else load_run(value)


class Comparison:
    """Before and after a fix: growth side by side, a change ratio, and a plot."""

    def __init__(self, before: Run, after: Run) -> None:
        self.before = before
        self.after = after

    @property
    def table(self) -> pd.DataFrame:
        """One row per signal both runs have: per step and per hour before/after, ratio,
        verdicts."""
        b, a = self.before.analysis(), self.after.analysis()
        rows = []
        for signal in [s for s in b.growth if s in a.growth]:
            gb, ga = b.growth[signal], a.growth[signal]
            per_step = math.isfinite(gb.per_step) and math.isfinite(ga.per_step)
            before_rate = gb.per_step if per_step else gb.per_s
            after_rate = ga.per_step if per_step else ga.per_s
            rows.append(
                {
                    "signal": signal,
                    "unit": f"{gb.unit}/{'step' if per_step else 's'}",
                    "before": before_rate,
                    "after": after_rate,
                    "after_ci95_lo": (ga.ci95_per_step if per_step else ga.ci95)[0],
                    "after_ci95_hi": (ga.ci95_per_step if per_step else ga.ci95)[1],
                    "ratio": after_rate / before_rate if before_rate else math.nan,
                    "before_mb_per_hour": gb.mb_per_hour,
                    "after_mb_per_hour": ga.mb_per_hour,
                    "before_verdict": b.signal_verdicts[signal].label,
                    "after_verdict": a.signal_verdicts[signal].label,
                }
            )
        return pd.DataFrame(rows).set_index("signal") if rows else pd.DataFrame()

    @property
    def verdicts(self) -> tuple[str, str]:
        return self.before.verdict().label, self.after.verdict().label

    def to_dict(self) -> dict[str, Any]:
        frame = self.table
        records = (
            {}
            if frame.empty
            else {
                signal: {
                    k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in row.items()
                }
                for signal, row in frame.to_dict(orient="index").items()
            }
        )
        return {
            "before": str(self.before.path),
            "after": str(self.after.path),
            "verdicts": {"before": self.verdicts[0], "after": self.verdicts[1]},
            "signals": records,
        }

    def plot(self, signal: str = "rss") -> Figure:
        """Growth since the end of the warm-up, both runs on one chart (and blocks below)."""
        from matplotlib.figure import Figure

        signals = [
            s
            for s in (signal, "blocks")
            if s in self.before.analysis().growth and s in self.after.analysis().growth
        ]
        signals = list(dict.fromkeys(signals))
        fig = Figure(figsize=(8, 2.8 * max(len(signals), 1)), layout="constrained")
        axes = fig.subplots(max(len(signals), 1), 1, sharex=True, squeeze=False)[:, 0]
        for ax, name in zip(axes, signals, strict=False):
            for run, style in (
                (self.before, _COMPARISON_STYLES["before"]),
                (self.after, _COMPARISON_STYLES["after"]),
            ):
                a = run.analysis()
                g = a.growth[name]
                series = run.samples[COLUMN_OF[name]].dropna()
                series = series[series.index >= g.t_start]
                scale, unit = (1e6, "MB") if g.unit == "bytes" else (1.0, "blocks")
                label = f"{run.name}: {_rate_text(g)} ({a.signal_verdicts[name].label})"
                ax.plot(
                    series.index - g.t_start,
                    (series.to_numpy() - g.baseline) / scale,
                    style,
                    lw=1.2,
                    label=label,
                )
            ax.axhline(0, color="0.6", lw=0.8)
            ax.set_ylabel(f"{name} growth ({unit})")
            ax.legend(loc="upper left", fontsize="small")
        axes[-1].set_xlabel("time since warm-up end (s)")
        fig.suptitle(f"before {self.verdicts[0]} / after {self.verdicts[1]}")
        return fig

    def __repr__(self) -> str:
        return (
            f"<leaklab.Comparison {self.before.name} {self.verdicts[0]} -> {self.after.name} "
            f"{self.verdicts[1]}>"
        )

    def _repr_html_(self) -> str:
        frame = self.table
        body = (
            frame.to_html(escape=True, na_rep="n/a", float_format=_num)
            if not frame.empty
            else "<p>no common signal</p>"
        )
        return (
            f"<div><b>before</b> {_esc(self.before.name)} ({_esc(self.verdicts[0])}) &rarr; "
            f"<b>after</b> {_esc(self.after.name)} ({_esc(self.verdicts[1])}){body}</div>"
        )


def _rate_text(g: Growth) -> str:
    """``+1.2 KB/step``, or per second where steps are unknown."""
    if math.isfinite(g.per_step):
        return units.format_growth(g.per_step, g.unit, "step", signed=True)
    return units.format_growth(g.per_s, g.unit, "s", signed=True)


def compare(before: Any, after: Any) -> Comparison:
    """Two runs side by side (each a :class:`Run`, a RunData or a run directory)."""
    return Comparison(_as_run(before), _as_run(after))


def rank_fleet(runs_dir: str | os.PathLike[str], jobs: int | None = None) -> pd.DataFrame:
    """Every run of a fleet folder ranked as ``leaklab rank`` ranks them: one row per run
    (verdict, MB/h and its 95% interval, %/h, current MB, generations), indexed by rank."""
    from leaklab.analysis import fleet

    rows = fleet.rank(fleet.fleet_runs(runs_dir), jobs=jobs or os.cpu_count() or 1)
    frame = pd.DataFrame([r.to_dict() for r in rows])
    if len(frame):
        frame[["ci95_lo_mb_per_hour", "ci95_hi_mb_per_hour"]] = pd.DataFrame(
            frame.pop("ci95_mb_per_hour").tolist(), index=frame.index
        )
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
    return frame
