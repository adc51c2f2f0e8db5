"""Which runs a report covers when the user does not say.

Rule for ``leaklab report`` with no run named (documented in the command's help):

1. Take the latest run under the runs folder (latest by start time).
2. Among the runs of the *same scenario*, a variant is an "after" variant when it
   is named ``fixed`` or starts with ``fixed`` (``fixed-lru``); every other variant
   is a "before" variant.
3. If that scenario has at least one before run and one after run, report the pair:
   the latest before run against the latest after run.
4. Otherwise report the latest run on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from leaklab import store


@dataclass(frozen=True)
class Selection:
    """Either one run, or a before/after pair."""

    runs: tuple[Path, ...]
    pair: bool

    @property
    def before(self) -> Path | None:
        return self.runs[0] if self.pair else None

    @property
    def after(self) -> Path | None:
        return self.runs[1] if self.pair else None


def is_after_variant(variant: str | None) -> bool:
    return bool(variant) and str(variant).lower().startswith("fixed")


def single(run: str | os.PathLike[str]) -> Selection:
    return Selection((_check(run),), pair=False)


def pair(before: str | os.PathLike[str], after: str | os.PathLike[str]) -> Selection:
    return Selection((_check(before), _check(after)), pair=True)


def latest(root: str | os.PathLike[str] = "runs") -> Selection:
    """The latest before/after pair of the latest run's scenario, or the latest run."""
    runs = store.list_runs(root)
    if not runs:
        raise store.RunFormatError(
            f"no runs under {root}; record one with `leaklab run SCENARIO`, "
            "or name runs: `leaklab report RUN` / `--before A --after B`"
        )
    checked: dict[Path, bool] = {}

    def newest_of(paths: list[Path]) -> Path | None:
        """The newest well-formed run (malformed ones are skipped with a warning)."""
        for p in reversed(paths):
            if p not in checked:
                checked[p] = store.well_formed(p)
            if checked[p]:
                return p
        return None

    newest = newest_of(runs)
    if newest is None:
        raise store.RunFormatError(
            f"no well-formed runs under {root}; record one with `leaklab run SCENARIO`"
        )
    metas = {p: _meta(p) for p in runs}
    scenario = metas[newest].get("scenario")
    same = [p for p in runs if metas[p].get("scenario") == scenario]
    before = newest_of([p for p in same if not is_after_variant(metas[p].get("variant"))])
    after = newest_of([p for p in same if is_after_variant(metas[p].get("variant"))])
    if before is not None and after is not None:
        return Selection((before, after), pair=True)
    return Selection((newest,), pair=False)


def _meta(path: Path) -> dict:
    try:
        return store.read_meta(path)
    except store.RunFormatError:
        return {}


def _check(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    store.read_meta(path)  # raises RunFormatError with a message that says what is wrong
    return path
