"""One run in, one :class:`RunAnalysis` out: growth per signal, the verdict, and
room for attribution (top types, sites, retention chains) filled by the profiler
analysis."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leaklab import store, units
from leaklab.analysis import growth as growth_mod
from leaklab.analysis import inferred_restarts
from leaklab.analysis import verdict as verdict_mod
from leaklab.analysis import window as window_mod
from leaklab.analysis.attribution import attribute
from leaklab.analysis.growth import Growth, GrowthOptions
from leaklab.analysis.verdict import Thresholds, Verdict
from leaklab.kinds import Status
from leaklab.kinds import Verdict as Label
from leaklab.records import settings_of


@dataclass
class RunAnalysis:
    """Everything the outputs (terminal, report, gate, notebook) show about one run."""

    run_path: Path | None
    meta: dict[str, Any]
    status: str
    growth: dict[str, Growth]
    verdict: Verdict
    signal_verdicts: dict[str, Verdict]
    window: window_mod.Window
    thresholds: Thresholds
    steps_per_s: float = math.nan
    n_rows: int = 0
    notes: list[str] = field(default_factory=list)
    top_types: list[Any] = field(default_factory=list)
    top_sites: list[Any] = field(default_factory=list)
    chains: list[Any] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.verdict.label

    @property
    def primary(self) -> Growth | None:
        """The growth the verdict rests on (RSS when nothing else was chosen)."""
        return (
            self.growth.get(self.verdict.signal)
            or self.growth.get("rss")
            or next(iter(self.growth.values()), None)
        )

    def to_dict(self) -> dict[str, Any]:
        verdict = self.verdict.to_dict()
        return {
            "run": str(self.run_path) if self.run_path else None,
            "scenario": self.meta.get("scenario"),
            "variant": self.meta.get("variant"),
            "status": self.status,
            "verdict": verdict["label"],
            "reasons": verdict["reasons"],
            "signal": verdict["signal"],
            "more_time_s": verdict["more_time_s"],
            "growth": {name: g.to_dict() for name, g in self.growth.items()},
            "signals": {name: v.to_dict() for name, v in self.signal_verdicts.items()},
            "warmup": self.window.to_dict(),
            "steps_per_s": None
            if not math.isfinite(self.steps_per_s)
            else round(self.steps_per_s, 3),
            "rows": self.n_rows,
            "notes": list(self.notes),
            "thresholds": self.thresholds.to_dict(),
            "baseline": growth_mod.BASELINE_DEFINITION,
            "top_types": list(self.top_types),
            "top_sites": list(self.top_sites),
            "chains": list(self.chains),
        }


def _status_note(run: store.RunData, n_rows: int, t_last: float) -> str | None:
    status = run.status
    when = units.format_duration(t_last) if math.isfinite(t_last) else "the start"
    message = (run.meta.get("exit") or {}).get("message") or ""
    suffix = f" ({message})" if message else ""
    if status == Status.COMPLETED:
        return None
    if status == Status.RUNNING:
        return (
            f"the run is still being written, or was cut short: analysed the {n_rows} samples up "
            f"to {when}"
        )
    if status == Status.INTERRUPTED:
        return (
            f"the run was interrupted{suffix}: analysed the {n_rows} samples written before it "
            f"stopped at {when}"
        )
    if status == Status.KILLED_AT_CAP:
        return (
            f"the run was killed at the memory cap{suffix}: analysed the {n_rows} samples up to "
            f"{when}"
        )
    if status == Status.FAILED:
        return f"the run failed{suffix}: analysed the {n_rows} samples written before {when}"
    return f"run status {status!r}: analysed the {n_rows} samples up to {when}"


#: Post-collection counts needed in the window before they stand for the blocks signal.
MIN_COLLECTED = 8


def default_level(meta: dict[str, Any]) -> float:
    """The confidence of the intervals a run's verdict rests on: 95%, or the per-look level
    of the sequential rule that stopped a run of no set length."""
    rule = settings_of(meta).stop_rule
    level = rule.level if rule is not None else None
    return float(level) if isinstance(level, (int, float)) and 0.5 <= level < 1 else 0.95


def signal_rows(
    signal: str, columns: dict[str, list[float]], meta: dict[str, Any], mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The values behind a signal and the rows to fit, with a note on where they come from.

    RSS is the child's own reading at the step boundary where the run has it (exact in
    steps); the parent's outside reading otherwise, and always when the run summed the
    child's children. Blocks are the counts right after full collections where the window
    has enough of them, so garbage waiting for the collector is not read as growth."""
    n = len(mask)

    def column(name: str) -> np.ndarray:
        values = columns.get(name)
        return np.asarray(values, dtype=float) if values else np.full(n, np.nan)

    if signal == "rss" and not settings_of(meta).include_children:
        inside = column("child_rss")
        if np.isfinite(inside[mask]).sum() >= 3:
            return inside, mask & np.isfinite(inside), None
    if signal == "blocks":
        collected = column("collected_blocks")
        rows = mask & np.isfinite(collected)
        if rows.sum() >= MIN_COLLECTED:
            return (
                collected,
                rows,
                f"counted after each full collection ({int(rows.sum())} in the window)",
            )
    y = column(growth_mod.COLUMN_OF[signal])
    return y, mask, None


def _settled(
    columns: dict[str, list[float]], mask: np.ndarray, steps: np.ndarray, generation: np.ndarray
) -> tuple[float, float]:
    """Blocks per step after full collections (first to last reading in the window, one
    generation) and of the raw readings (least squares), NaN where they cannot be told."""
    n = len(mask)
    raw = np.asarray(columns.get("allocated_blocks") or [math.nan] * n, dtype=float)
    collected = np.asarray(columns.get("collected_blocks") or [math.nan] * n, dtype=float)
    rows = mask & np.isfinite(steps)
    if rows.any():
        rows &= generation == generation[rows][-1]
    raw_rows = rows & np.isfinite(raw)
    raw_slope = math.nan
    if raw_rows.sum() >= 3 and np.ptp(steps[raw_rows]) > 0:
        raw_slope = float(np.polyfit(steps[raw_rows], raw[raw_rows], 1)[0])
    at = np.flatnonzero(rows & np.isfinite(collected))
    span = np.ptp(steps[rows]) if rows.any() else 0.0
    if len(at) < 2 or span <= 0 or steps[at[-1]] - steps[at[0]] < span / 2:
        return math.nan, raw_slope
    return float((collected[at[-1]] - collected[at[0]]) / (steps[at[-1]] - steps[at[0]])), raw_slope


@dataclass
class Measured:
    """Growth and verdict of a run's signals, without attribution (what a look while recording
    needs)."""

    growth: dict[str, Growth]
    signal_verdicts: dict[str, Verdict]
    verdict: Verdict
    window: window_mod.Window
    level: float


def measure(
    run: store.RunData,
    *,
    warmup: Any = None,
    thresholds: Thresholds | None = None,
    options: GrowthOptions | None = None,
    level: float | None = None,
) -> Measured:
    """Growth per signal and the verdict on intervals at ``level`` (default:
    :func:`default_level`). A run whose restarts were inferred from memory alone is also
    judged as one process (:mod:`~leaklab.analysis.inferred_restarts`)."""
    thresholds = thresholds or Thresholds()
    level = default_level(run.meta) if level is None else level
    measured = _measure(run, warmup, thresholds, options, level)
    drops = inferred_restarts.inferred(run)
    if drops and measured.verdict.label != Label.INCONCLUSIVE:  # else nothing to reconcile
        one = inferred_restarts.as_one_process(run, drops)
        as_one = _measure(one, warmup, thresholds, options, level).verdict
        measured.verdict = inferred_restarts.reconcile(measured.verdict, as_one, len(drops))
    return measured


def _measure(
    run: store.RunData,
    warmup: Any,
    thresholds: Thresholds,
    options: GrowthOptions | None,
    level: float,
) -> Measured:
    """:func:`measure` of the run's generations as recorded."""
    columns = run.columns
    window = window_mod.select(columns, run.meta, warmup)
    mask = window.mask
    t = np.asarray(columns.get("t", []), dtype=float)
    n = len(t)

    def column(name: str) -> np.ndarray:
        values = columns.get(name)
        return np.asarray(values, dtype=float) if values else np.full(n, np.nan)

    steps, generation = column("steps"), np.nan_to_num(column("generation"))
    config = run.config
    interval = float(config.sample_interval_s or config.interval_s or math.nan)
    growth: dict[str, Growth] = {}
    for signal, col in growth_mod.COLUMN_OF.items():
        if not np.isfinite(column(col)).any():
            continue  # the run does not have this signal
        y, rows, note = signal_rows(signal, columns, run.meta, mask)
        g = growth_mod.estimate(signal, t[rows], steps[rows], y[rows], generation[rows], options)
        if note:
            g.notes.append(note)
        if signal == "blocks":
            g.settled_per_step, g.raw_per_step = _settled(columns, mask, steps, generation)
        growth[signal] = g
    per_signal = {
        s: verdict_mod.judge(g.at_level(level), thresholds, interval) for s, g in growth.items()
    }
    verdict = verdict_mod.combine(growth, per_signal, thresholds)
    return Measured(growth, per_signal, verdict, window, level)


def _run_notes(run: store.RunData, measured: Measured, t: np.ndarray) -> list[str]:
    """What qualifies the analysis, each once: how the run ended, its window, its warnings,
    the signals' own notes and a stricter confidence level."""
    window = measured.window
    notes = list(window.notes)
    status_note = _status_note(run, int(window.mask.sum()), float(t[-1]) if len(t) else math.nan)
    if status_note:
        notes.insert(0, status_note)
    notes.extend(run.warnings)
    for g in measured.growth.values():
        notes.extend(f"{g.signal}: {note}" for note in g.notes if "too few" not in note)
    if measured.level != 0.95:
        notes.append(
            f"verdict on {measured.level:.2%} intervals: the run stopped when its verdict was "
            "confident, so each look at the data used a stricter interval (docs/analysis.md)"
        )
    return list(dict.fromkeys(notes))


def analyze(
    run: store.RunData | str | os.PathLike[str],
    *,
    warmup: Any = None,
    thresholds: Thresholds | None = None,
    options: GrowthOptions | None = None,
    level: float | None = None,
) -> RunAnalysis:
    """Growth and verdict of a run (a :class:`~leaklab.store.RunData` or a run directory).

    ``warmup`` overrides the run's warm-up: ``"10s"``, ``"1000"`` (steps), ``0`` for none.
    ``level`` is the confidence of the intervals the verdict rests on (95%, or what the
    sequential rule of a run with no set length used). Works on runs that are still
    running, were interrupted, failed or were killed at the cap: whatever rows exist are
    analysed and ``notes`` says so.
    """
    if not isinstance(run, store.RunData):
        run = store.read_run(run)
    thresholds = thresholds or Thresholds()
    measured = measure(run, warmup=warmup, thresholds=thresholds, options=options, level=level)
    growth, per_signal, verdict, window = (
        measured.growth,
        measured.signal_verdicts,
        measured.verdict,
        measured.window,
    )
    t = np.asarray(run.columns.get("t", []), dtype=float)
    n = len(t)
    notes = _run_notes(run, measured, t)
    steps_per_s = next(
        (g.steps_per_s for g in growth.values() if math.isfinite(g.steps_per_s)), math.nan
    )
    blocks_verdict = per_signal.get("blocks")
    found = attribute(
        run,
        blocks=growth.get("blocks"),
        blocks_leak=blocks_verdict is not None and blocks_verdict.label == Label.LEAK,
    )
    return RunAnalysis(
        run_path=run.path,
        meta=run.meta,
        status=run.status,
        growth=growth,
        verdict=verdict,
        signal_verdicts=per_signal,
        window=window,
        thresholds=thresholds,
        steps_per_s=steps_per_s,
        n_rows=n,
        notes=notes,
        top_types=found.top_types,
        top_sites=found.top_sites,
        chains=found.chains,
    )
