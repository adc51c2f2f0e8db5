"""Run a scenario in a child process and record it into a run directory."""

from leaklab.runner.parent import (
    EXIT_CODES,
    Look,
    Prepared,
    RunConfig,
    RunResult,
    StopRule,
    default_max_rss,
    prepare,
    run,
)
from leaklab.runner.supervisor import RecyclePolicy

__all__ = [
    "EXIT_CODES",
    "Look",
    "Prepared",
    "RecyclePolicy",
    "RunConfig",
    "RunResult",
    "StopRule",
    "default_max_rss",
    "prepare",
    "run",
]
