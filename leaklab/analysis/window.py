"""Which rows of a run are analysed: the samples after the warm-up.

Rows written while setup was still running (``steps`` empty) are never analysed.
The warm-up is skipped in every process generation: generation 0 ends it where
the run recorded it (``meta["warmup_end"]``), later generations (a recycled
child starts over) skip the same number of steps or seconds as was asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leaklab import units
from leaklab.records import settings_of


class WarmupError(ValueError):
    """A warm-up value that does not parse; the message lists the accepted forms."""


WARMUP_FORMS = f"{units.STEPS_OR_DURATION_FORMS}, or 0 / none to analyse every sample after setup"


@dataclass
class Window:
    """The analysed rows, and how the warm-up was chosen."""

    mask: np.ndarray
    source: str  # "run" (recorded end), "config" (asked, applied here), "argument", "none"
    requested: dict[str, Any] | None
    t_start: float = math.nan
    steps_start: float = math.nan
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else round(float(v), 6)

        return {
            "source": self.source,
            "requested": self.requested,
            "t": clean(self.t_start),
            "steps": clean(self.steps_start),
            "rows": int(self.mask.sum()),
        }


def parse_warmup(value: Any) -> dict[str, Any] | None:
    """``None`` -> use the run's; ``"10s"``/``10.0`` -> seconds; ``"1000"``/``1000`` (int) -> steps;
    ``0``/``"none"`` -> no warm-up; a ``{"steps": n}`` or ``{"seconds": s}`` dict as in
    meta.json."""
    if value is None:
        return None
    if isinstance(value, units.StepsOrDuration):
        return {"steps": value.steps} if value.steps is not None else {"seconds": value.seconds}
    if isinstance(value, dict):
        if set(value) <= {"steps", "seconds"} and len(value) == 1:
            return dict(value)
        raise WarmupError(f"not a warm-up: {value!r}; accepted forms: {WARMUP_FORMS}")
    if isinstance(value, bool):
        raise WarmupError(f"not a warm-up: {value!r}; accepted forms: {WARMUP_FORMS}")
    if isinstance(value, int):
        return {"steps": value} if value > 0 else {}
    if isinstance(value, float):
        if value < 0 or not math.isfinite(value):
            raise WarmupError(f"not a warm-up: {value!r}; accepted forms: {WARMUP_FORMS}")
        return {"seconds": value} if value > 0 else {}
    text = str(value).strip().lower()
    if text in ("0", "none", "no", "off", ""):
        return {}
    try:
        parsed = units.parse_steps_or_duration(text)
    except units.UnitError:
        raise WarmupError(f"not a warm-up: {value!r}; accepted forms: {WARMUP_FORMS}") from None
    return parse_warmup(parsed)


def _skip(t: np.ndarray, steps: np.ndarray, rows: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Rows (indices into t) of one generation left after skipping ``spec``."""
    if not spec or len(rows) == 0:
        return rows
    if spec.get("steps") is not None:
        return rows[steps[rows] >= float(spec["steps"])]
    start = t[rows[0]]
    return rows[t[rows] >= start + float(spec.get("seconds") or 0.0)]


def _past_recorded_end(
    t: np.ndarray, steps: np.ndarray, rows: np.ndarray, recorded: dict[str, Any]
) -> np.ndarray:
    """The ``rows`` after the warm-up end the run recorded."""
    # Row times are when the parent received the sample, the event's time is the
    # child's: the step count is the exact boundary when there is one.
    if recorded.get("steps") is not None:
        return rows[steps[rows] >= float(recorded["steps"])]
    return rows[t[rows] >= float(recorded.get("t") or 0.0)]


def _idle_rows(steps: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The ``kept`` rows of a generation that add time without work, to leave out.

    Rows at the generation's last step count (waiting for a stop request, a service idle
    after its load) add time without work: only the last of them, the final sample, stays.
    """
    if not len(kept):
        return kept
    last = steps[kept].max()
    return kept[steps[kept] == last][:-1]  # the last one is the final sample, before teardown


def select(columns: dict[str, list[float]], meta: dict[str, Any], warmup: Any = None) -> Window:
    """The post-warm-up rows of a run (``warmup`` overrides the run's own)."""
    t = np.asarray(columns.get("t", []), dtype=float)
    n = len(t)
    steps = np.asarray(columns.get("steps") or [math.nan] * n, dtype=float)
    generation = np.nan_to_num(np.asarray(columns.get("generation") or [0.0] * n, dtype=float))
    stepping = np.isfinite(steps) & np.isfinite(t)
    config = settings_of(meta)
    if config.counts_steps is False:
        # an imported series: no steps were counted, and there is no setup
        stepping = np.isfinite(t)
    mask = np.zeros(n, dtype=bool)
    notes: list[str] = []
    override = parse_warmup(warmup)
    asked = config.warmup.to_dict() if config.warmup else {}
    recorded = meta.get("warmup_end") if isinstance(meta.get("warmup_end"), dict) else None
    if override is not None:
        spec, source = override, ("argument" if override else "none")
    else:
        spec, source = dict(asked), ("config" if asked else "none")
    if not stepping.any():
        mask = np.isfinite(t)
        if n:
            notes.append("no step completed: only setup was sampled, so growth is over setup")
        return Window(mask, "none", spec or None, float(t[0]) if n else math.nan, math.nan, notes)
    for g in np.unique(generation[stepping]):
        rows = np.flatnonzero(stepping & (generation == g))
        if override is None and g == generation[stepping][0] and recorded:
            kept = _past_recorded_end(t, steps, rows, recorded)
            source = "run"
        else:
            kept = _skip(t, steps, rows, spec)
        mask[kept] = True
        mask[_idle_rows(steps, kept)] = False
    decided = meta.get("decided") if isinstance(meta.get("decided"), dict) else None
    end = decided.get("window_end") if decided else None
    if override is None and isinstance(end, dict) and isinstance(end.get("t"), (int, float)):
        # A run that stopped on a confident verdict is read as its deciding look read it.
        mask &= t <= float(end["t"])
    if not mask.any():
        mask = stepping.copy()
        notes.append(
            f"the warm-up ({_describe(spec)}) never ended, so every sample after setup is "
            "analysed, start-up growth included"
        )
        source = "none"
    first = int(np.flatnonzero(mask)[0])
    return Window(mask, source, spec or None, float(t[first]), float(steps[first]), notes)


def _describe(spec: dict[str, Any]) -> str:
    if spec.get("steps") is not None:
        return f"{int(spec['steps']):,} steps"
    if spec.get("seconds") is not None:
        return units.format_duration(float(spec["seconds"]))
    return "none"
