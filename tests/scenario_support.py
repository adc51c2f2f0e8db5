"""Run a built-in scenario through the real runner and read its growth (for the scenario tests).

Growth comes from :func:`leaklab.analysis.analyze`, the one piece of code that
computes it; this module only starts runs and picks numbers out of the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from leaklab import scenario as scenario_mod
from leaklab import units
from leaklab.analysis import Growth, RunAnalysis, analyze
from leaklab.runner import RunConfig, RunResult, run

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def load(name: str) -> scenario_mod.Scenario:
    """A built-in scenario, loaded the way the runner loads it."""
    return scenario_mod.load(SCENARIOS / f"{name}.py")


def module(name: str) -> ModuleType:
    return load(name).module


@dataclass
class Measured:
    result: RunResult
    analysis: RunAnalysis

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.analysis.meta["params"])

    def growth(self, signal: str) -> Growth:
        return self.analysis.growth[signal]

    def summary(self) -> str:
        parts = [
            f"{self.result.status}, {self.result.steps} steps in {self.result.duration_s:.1f}s, "
            f"verdict {self.analysis.verdict.label}"
        ]
        for signal in ("blocks", "rss"):
            g = self.analysis.growth.get(signal)
            if g is not None:
                lo, hi = g.ci95_per_step
                parts.append(f"{signal} {g.bytes_per_step:.3f}/step (95% CI {lo:.3f}..{hi:.3f})")
        return "; ".join(parts) + f"; {self.result.message}"


def run_scenario(
    out: Path,
    name: str,
    variant: str,
    *,
    warmup: str,
    duration_s: float | None = None,
    steps: int | None = None,
    params: dict[str, Any] | None = None,
    rate: str | None = None,
    interval_s: float = 0.1,
) -> Measured:
    """One real run (child process, real upstream) recorded under ``out``, then analysed."""
    config = RunConfig(
        scenario=str(SCENARIOS / f"{name}.py"),
        variant=variant,
        params=dict(params or {}),
        duration_s=duration_s,
        steps=steps,
        rate=units.parse_rate(rate) if rate else None,
        warmup=units.parse_steps_or_duration(warmup),
        interval_s=interval_s,
        out=str(out),
        progress=False,
        profile="rss",
    )
    result = run(config)
    return Measured(result, analyze(result.run_dir))
