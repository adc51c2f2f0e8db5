"""Colours, sizes and axis scales shared by every chart, so a report reads as one piece.

Colours are from the Okabe-Ito palette (distinguishable with colour-blindness):
before is always vermillion, after always blue, in every chart and table.
"""

from __future__ import annotations

from dataclasses import dataclass

BEFORE = "#D55E00"
AFTER = "#0072B2"
SINGLE = "#0072B2"
HEAP = "#009E73"
USS = "#56B4E9"
LIMIT = "#B00020"
RESTART = "#555555"
WARMUP = "#9E9E9E"
MUTED = "#666666"

ROLE_COLOURS = {"before": BEFORE, "after": AFTER, "run": SINGLE}

DPI = 100
WIDE = (10.0, 4.6)
TALL = (10.0, 6.4)

RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "savefig.bbox": "tight",
    "savefig.dpi": DPI,
}


@dataclass(frozen=True)
class TimeScale:
    """Seconds shown in the unit that suits the run's length."""

    unit: str
    seconds: float

    @property
    def label(self) -> str:
        return f"time since start ({self.unit})"


def time_scale(t_max: float) -> TimeScale:
    if t_max > 3 * 3600:
        return TimeScale("h", 3600.0)
    if t_max > 180:
        return TimeScale("min", 60.0)
    return TimeScale("s", 1.0)


#: Bytes on a y axis are shown in MB (decimal, as everywhere in leaklab).
MB = 1e6
