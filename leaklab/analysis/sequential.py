"""When to stop a run that has no set length: a sequential verdict that keeps its error rate.

A run started with neither ``--steps`` nor ``--duration`` is looked at while it records,
at run times that grow geometrically (3 s, 3.75 s, 4.7 s ... up to ``--max-duration``),
and stops at the first look whose verdict is LEAK, PLATEAU or NO_LEAK on at least
20 samples. Looking again and
again at data that keeps coming would make a 95% interval exclude the threshold by
chance sooner or later, so every look judges on intervals at ``1 - alpha / K`` for the K
looks the schedule allows (Bonferroni): the chance that any look's interval misses the
true rate is then at most ``alpha``, however the looks depend on each other. The
schedule is fixed before the run starts, which is what makes the bound hold.

The deciding look's window (its start and its last row) is recorded in the run, so
``leaklab analyze`` later reads the rows the decision read, at the same level, and not
the few the child wrote while it stopped.

Each look skips the run's warm-up and, on top of it, the first tenth of the time so far,
so start-up growth fades out of the window as the run goes on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from leaklab import store, units
from leaklab.analysis.analyzer import measure
from leaklab.analysis.verdict import Thresholds
from leaklab.kinds import Verdict as Label
from leaklab.records import Look

#: Family-wise chance that any look's interval misses the true rate.
ALPHA = 0.05
FIRST_LOOK_S = 3.0
#: A look decides only on at least this many samples in its window.
MIN_LOOK_SAMPLES = 20
LOOK_RATIO = 1.25
#: Share of the run so far that each look skips, besides the warm-up.
SKIP_FRACTION = 0.1
DECISIVE = (Label.LEAK, Label.PLATEAU, Label.NO_LEAK)


def look_times(
    max_duration_s: float, first_s: float = FIRST_LOOK_S, ratio: float = LOOK_RATIO
) -> list[float]:
    """Run times of the looks: ``first_s`` growing by ``ratio``, the last one at the maximum."""
    times: list[float] = []
    t = first_s
    while t < max_duration_s * 0.999:
        times.append(round(t, 3))
        t *= ratio
    times.append(float(max_duration_s))
    return times


def look_level(n_looks: int, alpha: float = ALPHA) -> float:
    """Per-look confidence that keeps the family-wise error at ``alpha`` over ``n_looks`` looks."""
    return 1 - alpha / max(n_looks, 1)


class SequentialStop:
    """The stop rule :func:`leaklab.runner.run` calls at each scheduled look."""

    def __init__(
        self, max_duration_s: float, thresholds: Thresholds | None = None, alpha: float = ALPHA
    ) -> None:
        self.times = look_times(max_duration_s)
        self.alpha = alpha
        self.level = look_level(len(self.times), alpha)
        self.thresholds = thresholds or Thresholds()
        self.looks = 0
        self.next_at = self.times[0]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "sequential",
            "alpha": self.alpha,
            "looks": len(self.times),
            "level": round(self.level, 6),
            "first_look_s": self.times[0],
            "look_ratio": LOOK_RATIO,
            "skip_fraction": SKIP_FRACTION,
        }

    def look(self, run_dir: Path, t: float) -> Look:
        self.looks += 1
        later = [x for x in self.times if x > t]
        self.next_at = later[0] if later else math.inf
        run = store.read_run(run_dir)
        warmup = _look_warmup(run, t)
        measured = measure(run, warmup=warmup, thresholds=self.thresholds, level=self.level)
        verdict = measured.verdict
        growth = measured.growth.get(verdict.signal) if verdict.signal else None
        text = verdict.label
        if growth is not None and math.isfinite(growth.per_step):
            g = growth.at_level(self.level)
            lo, hi = g.ci95_per_step
            value, low, high = (
                units.format_growth(v, growth.unit) for v in (growth.per_step, lo, hi)
            )
            text = (
                f"{verdict.signal} {value} (CI {units.format_interval(low, high)}) {verdict.label}"
            )
        if (
            verdict.label not in DECISIVE
            and verdict.more_time_s is not None
            and math.isfinite(verdict.more_time_s)
        ):
            text += f", ~{units.format_duration(verdict.more_time_s)} more"
        window = measured.window
        decided = verdict.label in DECISIVE and int(window.mask.sum()) >= MIN_LOOK_SAMPLES
        start = end = None
        if decided and math.isfinite(window.t_start):
            start = {
                "t": window.t_start,
                "steps": None if not math.isfinite(window.steps_start) else window.steps_start,
            }
            last = int(window.mask.nonzero()[0][-1])
            end = {"t": run.columns["t"][last], "steps": run.columns["steps"][last]}
        return Look(
            decided, f"look {self.looks}/{len(self.times)}: {text}", start, verdict.label, end
        )


def _look_warmup(run: store.RunData, t: float) -> dict[str, Any] | None:
    """The run's own warm-up, or the first tenth of the time so far if that is longer."""
    recorded = run.meta.get("warmup_end") if isinstance(run.meta.get("warmup_end"), dict) else None
    recorded_t = float(recorded.get("t") or 0.0) if recorded else 0.0
    skip = SKIP_FRACTION * t
    return None if recorded and recorded_t >= skip else {"seconds": skip}
