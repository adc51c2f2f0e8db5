"""The CI regression gate: checks read from ``[tool.leaklab.gate]``, run through the
real runner, judged on the analysis' confidence intervals.

Config (``pyproject.toml``, or a file given with ``--config``)::

    [tool.leaklab.gate]
    duration = "15s"              # defaults for every check (any check key but name/scenario)
    baseline = ".leaklab-baseline.json"

    [[tool.leaklab.gate.checks]]
    name = "http-agent fixed"     # optional; default "scenario[variant]"
    scenario = "http-agent"       # a name (leaklab list) or a path, relative to the config file
    variant = "fixed"
    params = { response_size = "2KB" }
    duration = "20s"              # or steps = 5000
    rate = "200/s"
    max_growth = "0.5MB/h"        # per time, or per step ("64B/step")
    max_per_step = "16B"
    max_blocks_per_step = 0.05    # allocated blocks, the exact Python-object signal
    verdict = ["NO_LEAK", "PLATEAU"]
    signal = "rss"                # what max_growth / max_per_step measure: rss, uss, traced

**The rule.** Each limit is compared with the 95% confidence interval of the growth,
not with the point estimate. A limit *fails* when the whole interval lies above
it (the growth is established to exceed it); it *passes* when the whole interval
lies at or below it; an interval that straddles the limit is *undecided*, which
passes by default (``undecided = "fail"`` makes it fail). A verdict check fails on
a definite verdict outside the allowed set; ``INCONCLUSIVE`` is undecided. A
baseline regression needs the new interval's lower bound above the baseline
interval's upper bound plus the tolerance. Noise therefore widens intervals
instead of flipping answers: clean code passes and a leak well above its limit
fails, run after run (docs/ci.md gives the flip rates measured).

Checks run with the ``rss`` probe profile unless they ask for another: the gate
measures (RSS, USS, allocated blocks), ``leaklab run --profile deep`` diagnoses.
"""

from leaklab.gate.baseline import read_baseline, write_baseline
from leaklab.gate.config import (
    BASELINE_SCHEMA,
    CHECK_KEYS,
    DEFAULT_OUT,
    DEFAULT_PROFILE,
    DEFAULT_TOLERANCE,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_USAGE,
    GATE_KEYS,
    SIGNALS,
    TABLE,
    Check,
    ConfigError,
    GateConfig,
    Limit,
    Tolerance,
    find_pyproject,
    load_config,
    parse_config,
    select,
)
from leaklab.gate.execute import (
    Outcome,
    default_jobs,
    evaluate,
    figures_of,
    run_check,
    run_config,
    run_gate,
    validate_runs,
)
from leaklab.gate.judge import Judgement, decide, judge_baseline, judge_limit, judge_verdict
from leaklab.gate.output import exit_code, junit_xml, to_json

__all__ = [
    # config
    "EXIT_PASS",
    "EXIT_FAIL",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "TABLE",
    "SIGNALS",
    "BASELINE_SCHEMA",
    "CHECK_KEYS",
    "GATE_KEYS",
    "DEFAULT_TOLERANCE",
    "DEFAULT_OUT",
    "DEFAULT_PROFILE",
    "ConfigError",
    "Limit",
    "Tolerance",
    "Check",
    "GateConfig",
    "find_pyproject",
    "load_config",
    "parse_config",
    "select",
    # judge
    "Judgement",
    "decide",
    "judge_limit",
    "judge_verdict",
    "judge_baseline",
    # execute
    "Outcome",
    "evaluate",
    "figures_of",
    "run_config",
    "validate_runs",
    "run_check",
    "default_jobs",
    "run_gate",
    # baseline
    "read_baseline",
    "write_baseline",
    # output
    "exit_code",
    "to_json",
    "junit_xml",
]
