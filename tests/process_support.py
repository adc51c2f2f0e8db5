"""Waiting on what a background leaklab process has recorded, not on a clock.

Start-up on a busy machine takes an unknown time, so tests that signal a running
``leaklab`` act once its run folder holds the sample rows they need.
"""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path


def _recorded(out: Path) -> tuple[int, float]:
    """The most sample rows in a ``samples.csv`` under ``out``, and the highest step count."""
    rows, steps = 0, 0.0
    for path in out.glob("**/samples.csv"):
        with path.open(newline="") as fh:
            table = list(csv.DictReader(fh))
        rows = max(rows, len(table))
        steps = max([steps, *(float(r["steps"]) for r in table if r.get("steps"))])
    return rows, steps


def wait_for_samples(
    out: Path,
    process: subprocess.Popen[str],
    count: int,
    min_steps: int = 0,
    timeout: float = 60,
) -> None:
    """Returns once a ``samples.csv`` under ``out`` holds ``count`` rows and a row counts at least
    ``min_steps`` steps; fails if ``process`` ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        rows, steps = _recorded(out)
        if rows >= count and steps >= min_steps:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} samples or {min_steps} steps recorded under {out}")
