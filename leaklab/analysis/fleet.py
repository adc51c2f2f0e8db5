"""A fleet: many runs (one per pod, instance or process) analysed one by one and ranked.

Each run goes through :func:`leaklab.analysis.analyze` on its own and is reduced to one
:class:`FleetRow` (a few numbers), so a fleet of any size is held as rows, never as
samples. Runs are analysed in worker processes when ``jobs`` > 1.

Ranking: runs judged LEAK first, then by growth per hour (the primary signal's point
estimate), highest first; a run that could not be read ranks last with its error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leaklab import store
from leaklab.kinds import Verdict as Label

#: The verdict of a run that could not be read or analysed (ranked last, with its error).
ERROR = "ERROR"


@dataclass
class FleetRow:
    run: str
    name: str  # the series' label text (the run's variant), else the run directory's name
    verdict: str
    signal: str = ""
    mb_per_hour: float = math.nan
    ci95_mb_per_hour: tuple[float, float] = (math.nan, math.nan)
    pct_per_hour: float = math.nan
    baseline_mb: float = math.nan
    last_mb: float = math.nan
    samples: int = 0
    generations: int = 1
    window_s: float = math.nan
    reason: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, float]:
        order = {Label.LEAK: 0, ERROR: 2}.get(self.verdict, 1)
        growth = self.mb_per_hour if math.isfinite(self.mb_per_hour) else -math.inf
        return order, -growth

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        data["ci95_mb_per_hour"] = [clean(v) for v in self.ci95_mb_per_hour]
        return {k: clean(v) for k, v in data.items()}


def analyse_one(path: str | os.PathLike[str], warmup: Any = None) -> FleetRow:
    """One run reduced to its row (an unreadable run gives an ``ERROR`` row, not an exception)."""
    from leaklab.analysis.analyzer import analyze

    path = Path(path)
    try:
        data = store.read_run(path, warn=False)
        analysis = analyze(data, warmup=warmup)
    except (store.RunFormatError, ValueError, OSError) as exc:
        return FleetRow(run=str(path), name=path.name, verdict=ERROR, reason=str(exc))
    meta = data.meta
    growth = analysis.primary
    series = (meta.get("source") or {}).get("series") or {}
    row = FleetRow(
        run=str(path),
        name=str(meta.get("variant") or path.name),
        verdict=analysis.label,
        signal=analysis.verdict.signal,
        samples=analysis.n_rows,
        reason=analysis.verdict.reasons[0] if analysis.verdict.reasons else "",
        labels={str(k): str(v) for k, v in series.items()},
    )
    if growth is not None:
        lo, hi = growth.ci95
        row.mb_per_hour = growth.mb_per_hour
        row.ci95_mb_per_hour = (lo * 3600 / 1e6, hi * 3600 / 1e6)
        row.pct_per_hour = growth.pct_per_hour
        row.baseline_mb = growth.baseline / 1e6
        row.last_mb = growth.last / 1e6
        row.generations = growth.generations
        row.window_s = growth.window_s
    return row


def _analyse_args(args: tuple[str, Any]) -> FleetRow:
    return analyse_one(*args)


def analyse_runs(
    paths: Iterable[str | os.PathLike[str]], jobs: int = 1, warmup: Any = None
) -> Iterator[FleetRow]:
    """Rows of ``paths`` in their order, analysed ``jobs`` at a time."""
    work = [(str(p), warmup) for p in paths]
    if jobs <= 1 or len(work) < 2:
        yield from map(_analyse_args, work)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_analyse_args, work, chunksize=max(1, min(32, len(work) // (4 * jobs))))


def rank(
    paths: Iterable[str | os.PathLike[str]], jobs: int = 1, warmup: Any = None
) -> list[FleetRow]:
    """Every run's row, ranked (see the module docstring)."""
    return sorted(analyse_runs(paths, jobs, warmup), key=FleetRow.sort_key)


def fleet_runs(root: str | os.PathLike[str]) -> list[Path]:
    """The run directories of a fleet folder (by name, so the order is stable)."""
    root = Path(root)
    if not root.is_dir():
        raise store.RunFormatError(f"{root} is not a folder of runs")
    runs = sorted(p for p in root.iterdir() if store.is_run_dir(p))
    if not runs:
        raise store.RunFormatError(
            f"no runs under {root}; import a fleet with `leaklab import --prometheus URL "
            "--query Q --out DIR`"
        )
    return runs
