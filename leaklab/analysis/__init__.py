"""Analysis: pure functions from a run directory to numbers a user can trust.

::

    from leaklab.analysis import analyze
    a = analyze("runs/20250101T000000Z-http-agent-leaky")
    a.verdict.label, a.growth["rss"].per_step, a.growth["rss"].ci95

The CLI, the report, the gate and notebooks all call these; nothing else
computes growth.
"""

from leaklab.analysis.analyzer import RunAnalysis, analyze
from leaklab.analysis.growth import BASELINE_DEFINITION, SIGNALS, Growth, GrowthOptions
from leaklab.analysis.verdict import Thresholds, Verdict
from leaklab.analysis.window import WarmupError, parse_warmup

__all__ = [
    "BASELINE_DEFINITION",
    "SIGNALS",
    "Growth",
    "GrowthOptions",
    "RunAnalysis",
    "Thresholds",
    "Verdict",
    "WarmupError",
    "analyze",
    "parse_warmup",
]
