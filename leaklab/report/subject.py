"""A run as the report sees it: read once, analysed once, with its role (before,
after or a lone run), its colour and its label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaklab import store
from leaklab.analysis import RunAnalysis, analyze
from leaklab.analysis.attribution import Attribution
from leaklab.analysis.recycling import Prediction, RecyclingMetrics, analyze_recycling
from leaklab.kinds import EventKind
from leaklab.records import RecycleSettings
from leaklab.report import style


@dataclass
class ReportRun:
    role: str  # "before", "after" or "run"
    run: store.RunData
    analysis: RunAnalysis
    attribution: Attribution
    recycling: RecyclingMetrics | None = None  # measured, when the run was recycled
    prediction: Prediction | None = (
        None  # recycling at the report's limit, predicted from the run's growth
    )

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    @property
    def scenario(self) -> str:
        return str(self.meta.get("scenario") or self.path.name)

    @property
    def variant(self) -> str:
        return str(self.meta.get("variant") or "")

    @property
    def name(self) -> str:
        """``http-agent [seed]``."""
        return self.scenario + (f" [{self.variant}]" if self.variant else "")

    @property
    def label(self) -> str:
        """What a legend says: ``before: seed`` or the run's name for a lone run."""
        if self.role == "run":
            return self.name
        return f"{self.role}: {self.variant or self.scenario}"

    @property
    def colour(self) -> str:
        return style.ROLE_COLOURS[self.role]

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def recycle_policy(self) -> RecycleSettings | None:
        policy = self.run.config.recycle
        return policy if policy is not None and policy.limit else None


def load(path: str | Path, role: str, warmup: Any = None) -> ReportRun:
    run = store.read_run(path, warn=False)
    analysis = analyze(run, warmup=warmup)
    return ReportRun(
        role=role,
        run=run,
        analysis=analysis,
        attribution=_attribution(run, analysis),
        recycling=_recycling(run),
    )


#: Probes whose events the attribution reads.
ATTRIBUTION_PROBES = {
    "gc-types": "types",
    "pympler": "types",
    "tracemalloc": "sites",
    "tracemalloc-full": "sites",
}


def _attribution(run: store.RunData, analysis: RunAnalysis) -> Attribution:
    """What grows and who holds it, as the analysis found it; the notes say why a list is empty."""
    found = Attribution(list(analysis.top_types), list(analysis.top_sites), list(analysis.chains))
    probes = set(run.config.probes or [])
    recorded = {what for name, what in ATTRIBUTION_PROBES.items() if name in probes}
    if "types" not in recorded:
        found.notes.append(
            "type counts were not recorded: run with --profile default (or --probe gc-types) "
            "to see which types grow"
        )
    if "sites" not in recorded:
        found.notes.append(
            "allocation sites were not recorded: run with --profile default (or --probe "
            "tracemalloc) to see where they are allocated"
        )
    if recorded and not (found.top_types or found.top_sites):
        found.notes.append("no type or allocation site grew steadily enough to be called a leak")
    return found


def _recycling(run: store.RunData) -> RecyclingMetrics | None:
    recycled = run.config.recycle or run.events_of(EventKind.RESTART)
    return analyze_recycling(run) if recycled else None
