"""``summary.json``: the numbers the report shows, as numbers (and the tables as shown),
for scripts and for checking the report against the analysis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from leaklab import __version__
from leaklab.report import limits as limits_mod
from leaklab.report import tables
from leaklab.report.document import Document
from leaklab.report.limits import MemoryLimit
from leaklab.report.subject import ReportRun

SCHEMA = "leaklab-report/1"


def number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a number that is not finite becomes null."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _run(r: ReportRun, limit: MemoryLimit) -> dict[str, Any]:
    ttl = limits_mod.time_to_limit(r.analysis.growth.get("rss"), limit)
    data: dict[str, Any] = {
        "role": r.role,
        "label": r.label,
        "path": str(r.path),
        "status": r.status,
        "analysis": r.analysis.to_dict(),
        "limit": limit.to_dict(),
        "time_to_limit_s": number(ttl),
        "reaches_limit": bool(math.isfinite(ttl)) if not math.isnan(ttl) else None,
    }
    if r.recycling is not None:
        data["recycling"] = r.recycling.to_dict()
    if r.prediction is not None:
        data["prediction"] = r.prediction.to_dict()
    data["attribution"] = r.attribution.to_dict()
    return data


def clean(value: Any) -> Any:
    """The same data with every non-finite number as null, so the file is strict JSON."""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def summary(
    doc: Document, runs: Sequence[ReportRun], limits: Sequence[MemoryLimit]
) -> dict[str, Any]:
    return clean(
        {
            "schema": SCHEMA,
            "leaklab": __version__,
            "title": doc.title,
            "kind": "before_after" if len(runs) == 2 else "run",
            "notices": [n.text for n in doc.notices],
            "runs": [_run(r, limit) for r, limit in zip(runs, limits, strict=True)],
            "tables": {t.key: tables.as_dict(t) for t in doc.tables() if t.key},
            "charts": [f.path.name for f in doc.figures()],
        }
    )
