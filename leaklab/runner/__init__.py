"""Run a scenario in a child process and record it into a run directory."""

from leaklab.runner.parent import (
    EXIT_CODES,
    Prepared,
    RunConfig,
    RunResult,
    default_max_rss,
    prepare,
    run,
)
from leaklab.runner.supervisor import RecyclePolicy

__all__ = ["EXIT_CODES", "Prepared", "RecyclePolicy", "RunConfig", "RunResult", "default_max_rss", "prepare", "run"]
