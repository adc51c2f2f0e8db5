"""Waiting on what a background leaklab process has recorded, not on a clock.

Start-up on a busy machine takes an unknown time, so tests that signal a running
``leaklab`` act once its run folder holds the sample rows they need.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def wait_for_samples(
    out: Path, process: subprocess.Popen[str], count: int, timeout: float = 60
) -> None:
    """Returns once a ``samples.csv`` under ``out`` holds ``count`` rows; fails if ``process``
    ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        rows = [len(f.read_text().splitlines()) - 1 for f in out.glob("**/samples.csv")]
        if rows and max(rows) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} samples recorded under {out}")
