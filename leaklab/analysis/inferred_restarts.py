"""Restarts inferred from memory alone, read both ways.

An imported series that says nothing of its processes (no pid, process start time or
request count) has its restarts inferred from memory: a fall back to where the process
started (``leaklab import``'s drop rule). A structure cleared in a live process that gives
its memory back to the system falls the same way. So a run with such restarts is judged
twice: as imported (each fall a new process) and as one process (each fall memory freed).
Where one reading says LEAK and the other a bounded shape (NO_LEAK or PLATEAU), memory
alone cannot tell which is true, and the verdict says so, with what would decide it. Where
they agree, or one of them cannot tell by itself, the imported reading stands.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from leaklab import store
from leaklab.analysis.verdict import Verdict
from leaklab.kinds import EventKind, RestartReason
from leaklab.kinds import Verdict as Label

BOUNDED = (Label.NO_LEAK, Label.PLATEAU)


def inferred(run: store.RunData) -> set[int]:
    """The generations an importer started on a drop to the baseline alone."""
    return {
        int(e["new_generation"])
        for e in run.events_of(EventKind.SERIES_RESTART)
        if e.get("reason") == RestartReason.DROP
        and isinstance(e.get("new_generation"), (int, float))
    }


def as_one_process(run: store.RunData, generations: set[int]) -> store.RunData:
    """The run with the ``generations`` merged into the ones before them: each inferred restart
    read as memory freed in the process that was already running."""
    column = run.columns.get("generation") or []
    number = np.nan_to_num(np.asarray(column, dtype=float)).astype(int)
    if not len(number):
        return run
    starts = np.array([g == 0 or g not in generations for g in range(int(number.max()) + 1)])
    merged = (np.cumsum(starts) - 1)[np.clip(number, 0, None)]
    return dataclasses.replace(run, columns={**run.columns, "generation": merged.tolist()})


def _disagree(a: str, b: str) -> bool:
    return (a == Label.LEAK and b in BOUNDED) or (a in BOUNDED and b == Label.LEAK)


def reconcile(as_imported: Verdict, as_one: Verdict, drops: int) -> Verdict:
    """The verdict of a run whose ``drops`` restarts were inferred from memory alone, from its
    verdict as imported and as one process."""
    if not _disagree(as_imported.label, as_one.label):
        return as_imported
    return Verdict(
        Label.INCONCLUSIVE,
        [
            f"Memory fell back to where its process started {drops} time"
            f"{'' if drops == 1 else 's'}, and nothing in the series says whether those falls "
            "were restarts (no pid, process start time or request count).",
            f"Read as restarts, {as_imported.label}: {as_imported.reasons[0]}",
            f"Read as memory freed in one live process, {as_one.label}: {as_one.reasons[0]}",
            "Memory alone cannot tell the two apart. What decides: the process' start time "
            "(Prometheus' process_start_time_seconds: select it in the query, or --start-time "
            "COLUMN), its pid (--pid), or a request count that starts over with the process "
            "(--count); or --restart-drop off when nothing restarts it.",
        ],
        as_imported.signal,
        None,
    )
