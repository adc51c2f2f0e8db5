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

from __future__ import annotations

import contextlib
import json
import math
import os
import signal as signal_mod
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from leaklab import scenario as scenario_mod
from leaklab import units

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
TABLE = "tool.leaklab.gate"
LABELS = ("LEAK", "PLATEAU", "NO_LEAK", "INCONCLUSIVE")
SIGNALS = ("rss", "uss", "traced")
BASELINE_SCHEMA = 1

#: Keys a check may have (and, except name/scenario, the gate table may set as defaults).
CHECK_KEYS: dict[str, str] = {
    "name": "a unique name (default: scenario[variant])",
    "scenario": "a scenario name (leaklab list) or a path to a .py file",
    "variant": "the scenario variant",
    "params": "a table of scenario parameters, e.g. { response_size = \"2KB\" }",
    "duration": units.DURATION_FORMS,
    "steps": "a step count (1000)",
    "rate": units.RATE_FORMS,
    "interval": "sampling interval: " + units.DURATION_FORMS,
    "warmup": units.STEPS_OR_DURATION_FORMS,
    "max_rss": "memory cap for the child: " + units.SIZE_FORMS,
    "profile": "probe profile: rss (the gate's default), default or deep",
    "probes": "a list of probe names to add",
    "signal": "what max_growth and max_per_step measure: " + ", ".join(SIGNALS),
    "max_growth": units.GROWTH_FORMS,
    "max_per_step": "bytes per step: 16B or 16B/step",
    "max_blocks_per_step": "allocated blocks per step, a number (0.05)",
    "verdict": "an allowed verdict or a list of them: " + ", ".join(LABELS),
    "tolerance": "baseline tolerance: a percentage (25%), a growth (0.5MB/h, 16B/step), or a list of them",
    "undecided": "what an interval straddling a limit does: pass (default) or fail",
}
#: Keys only the gate table itself takes.
GATE_KEYS: dict[str, str] = {
    "checks": "the list of checks: [[tool.leaklab.gate.checks]]",
    "baseline": "the baseline file (JSON) for --baseline / --update-baseline",
    "out": "folder receiving the run directories (default runs/gate)",
    "jobs": "checks run at once (default: half the CPUs)",
    "scenarios": "extra folders to find named scenarios in (a list)",
}
DEFAULT_TOLERANCE = "25%"
DEFAULT_OUT = "runs/gate"
#: The gate measures, it does not diagnose: in-child probes cost throughput and their
#: own bookkeeping shows up in the allocated blocks they would be judged on.
DEFAULT_PROFILE = "rss"


class ConfigError(Exception):
    """A bad gate configuration; the message names the file and the offending key."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Limit:
    """One threshold on one signal's growth, per second or per step."""

    key: str  # the config key it came from
    signal: str
    per: str  # "s" or "step"
    value: float  # units per second or per step
    text: str


@dataclass(frozen=True)
class Tolerance:
    """Baseline slack: a share of the baseline's figure, or an absolute growth."""

    relative: float = 0.0
    per_s: float = 0.0
    per_step: float = 0.0
    text: str = DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Check:
    name: str
    key: str  # "checks[0]": where errors point
    scenario: str
    variant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    steps: int | None = None
    rate: float | None = None
    interval_s: float | None = None
    warmup: units.StepsOrDuration | None = None
    max_rss: int | None = None
    profile: str | None = None
    probes: tuple[str, ...] = ()
    signal: str = "rss"
    limits: tuple[Limit, ...] = ()
    verdicts: tuple[str, ...] = ()
    tolerance: Tolerance = Tolerance(relative=0.25)
    fail_undecided: bool = False


@dataclass
class GateConfig:
    path: Path
    checks: list[Check]
    baseline: Path | None = None
    out: Path = Path(DEFAULT_OUT)
    jobs: int | None = None
    scenario_dirs: list[Path] = field(default_factory=list)


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the current folder)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> GateConfig:
    """Read and validate the gate config; raises :class:`ConfigError` naming the offending key."""
    if path is None:
        found = find_pyproject()
        if found is None:
            raise ConfigError(f"no pyproject.toml in {Path.cwd()} or above; pass --config FILE "
                              f"or add a [{TABLE}] table with [[{TABLE}.checks]]")
        file = found
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"--config {path}: no such file")
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    table = document.get("tool", {}).get("leaklab", {}).get("gate")
    prefix = TABLE
    if table is None and path is not None and "checks" in document:
        table, prefix = document, ""  # a standalone gate file: checks at the top level
    if table is None:
        raise ConfigError(f"{file}: no [{TABLE}] table; add one with [[{TABLE}.checks]] entries "
                          "(docs/ci.md has an example)")
    return parse_config(table, file, prefix)


def parse_config(table: Mapping[str, Any], file: Path, prefix: str = TABLE) -> GateConfig:
    """Validate a gate table (already parsed TOML) read from ``file``."""
    where = _Where(file, prefix)
    if not isinstance(table, Mapping):
        raise where.error("", "must be a table")
    allowed = (set(CHECK_KEYS) | set(GATE_KEYS)) - {"name", "scenario"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise where.error(unknown[0], f"unknown key; the gate table takes {_listing(GATE_KEYS)}, and defaults "
                                      f"for every check: {', '.join(k for k in CHECK_KEYS if k not in ('name', 'scenario'))}")
    base = file.parent
    raw_checks = table.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise where.error("checks", f"needs at least one check: add [[{TABLE}.checks]] with a scenario and its limits")
    defaults = {k: v for k, v in table.items() if k in CHECK_KEYS}
    checks = [_parse_check(_with_defaults(defaults, _table(raw, where, f"checks[{i}]")), where, f"checks[{i}]", base)
              for i, raw in enumerate(raw_checks)]
    seen: dict[str, str] = {}
    for check in checks:
        if check.name in seen:
            raise where.error(f"{check.key}.name", f"duplicate check name {check.name!r} (also {seen[check.name]}); "
                                                   "give each check a unique name")
        seen[check.name] = check.key
    jobs = table.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise where.error("jobs", f"must be a positive integer, got {jobs!r}")
    scenario_dirs = table.get("scenarios", [])
    if isinstance(scenario_dirs, str):
        scenario_dirs = [scenario_dirs]
    if not isinstance(scenario_dirs, list) or not all(isinstance(d, str) for d in scenario_dirs):
        raise where.error("scenarios", "must be a folder or a list of folders")
    baseline = table.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise where.error("baseline", "must be a file path")
    out = table.get("out", DEFAULT_OUT)
    if not isinstance(out, str):
        raise where.error("out", "must be a folder path")
    return GateConfig(
        path=file, checks=checks, baseline=(base / baseline) if baseline else None, out=base / out, jobs=jobs,
        scenario_dirs=[base / d for d in scenario_dirs] + [base / "scenarios"],
    )


def _with_defaults(defaults: Mapping[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    """The gate table's keys under the check's own; a check's ``steps`` replaces a default
    ``duration`` (and the other way round): a run length is one choice."""
    merged = {**defaults, **check}
    for own, other in (("steps", "duration"), ("duration", "steps")):
        if own in check and other not in check:
            merged.pop(other, None)
    return merged


@dataclass(frozen=True)
class _Where:
    file: Path
    prefix: str

    def error(self, key: str, message: str) -> ConfigError:
        dotted = ".".join(part for part in (self.prefix, key) if part)
        return ConfigError(f"{self.file}: {dotted}: {message}" if dotted else f"{self.file}: {message}")


def _listing(keys: Mapping[str, str]) -> str:
    return ", ".join(keys)


def _table(raw: Any, where: _Where, key: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise where.error(key, f"must be a table ([[{TABLE}.checks]]), got {type(raw).__name__}")
    return dict(raw)


def _parse_check(raw: dict[str, Any], where: _Where, key: str, base: Path) -> Check:
    unknown = sorted(set(raw) - set(CHECK_KEYS))
    if unknown:
        raise where.error(f"{key}.{unknown[0]}", f"unknown key; a check takes: {_listing(CHECK_KEYS)}")

    def err(name: str, message: str) -> ConfigError:
        return where.error(f"{key}.{name}", message)

    def parse(name: str, parser: Callable[[Any], Any]) -> Any:
        if name not in raw:
            return None
        try:
            return parser(raw[name])
        except (units.UnitError, ValueError, TypeError) as exc:
            raise err(name, str(exc)) from None

    scenario = raw.get("scenario")
    if not isinstance(scenario, str) or not scenario.strip():
        raise err("scenario", "required: a scenario name (leaklab list) or a path to a .py file")
    if scenario.endswith(".py") or "/" in scenario or os.sep in scenario:
        scenario = str((base / scenario).resolve())
    variant = raw.get("variant")
    if variant is not None and not isinstance(variant, str):
        raise err("variant", f"must be a string, got {variant!r}")
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        raise err("params", "must be a table, e.g. params = { size = 1024 }")
    if "duration" in raw and "steps" in raw:
        raise err("steps", "give duration or steps, not both")
    steps = raw.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise err("steps", f"must be a positive integer, got {steps!r}")
    signal = raw.get("signal", "rss")
    if signal not in SIGNALS:
        raise err("signal", f"unknown signal {signal!r}; one of {', '.join(SIGNALS)} "
                            "(allocated blocks have their own key, max_blocks_per_step)")
    limits = _parse_limits(raw, signal, err)
    verdicts = _parse_verdicts(raw.get("verdict"), err)
    if not limits and not verdicts:
        raise err("max_growth", "a check needs at least one limit: max_growth, max_per_step, "
                                "max_blocks_per_step or verdict")
    undecided = raw.get("undecided", "pass")
    if undecided not in ("pass", "fail"):
        raise err("undecided", f"must be 'pass' or 'fail', got {undecided!r}")
    probes = raw.get("probes", [])
    if isinstance(probes, str):
        probes = [p.strip() for p in probes.split(",") if p.strip()]
    if not isinstance(probes, list) or not all(isinstance(p, str) for p in probes):
        raise err("probes", "must be a list of probe names")
    profile = raw.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise err("profile", "must be a profile name: rss, default or deep")
    name = raw.get("name") or (Path(scenario).stem.replace("_", "-") if scenario.endswith(".py") else scenario) + (
        f"[{variant}]" if variant else "")
    if not isinstance(name, str):
        raise err("name", f"must be a string, got {name!r}")
    return Check(
        name=name, key=key, scenario=scenario, variant=variant, params=dict(params),
        duration_s=parse("duration", units.parse_duration), steps=steps, rate=parse("rate", units.parse_rate),
        interval_s=parse("interval", units.parse_duration), warmup=parse("warmup", units.parse_steps_or_duration),
        max_rss=parse("max_rss", units.parse_size), profile=profile, probes=tuple(probes), signal=signal,
        limits=tuple(limits), verdicts=verdicts, tolerance=_parse_tolerance(raw.get("tolerance", DEFAULT_TOLERANCE), err),
        fail_undecided=undecided == "fail",
    )


def _parse_limits(raw: Mapping[str, Any], signal: str, err: Callable[[str, str], ConfigError]) -> list[Limit]:
    limits: list[Limit] = []
    if "max_growth" in raw:
        text = raw["max_growth"]
        try:
            growth = units.parse_growth(str(text))
        except units.UnitError as exc:
            raise err("max_growth", str(exc)) from None
        if growth.bytes_per_s is not None:
            limits.append(Limit("max_growth", signal, "s", growth.bytes_per_s, str(text)))
        else:
            limits.append(Limit("max_growth", signal, "step", growth.bytes_per_step or 0.0, str(text)))
    if "max_per_step" in raw:
        text = raw["max_per_step"]
        try:
            if isinstance(text, str) and "/" in text:
                growth = units.parse_growth(text)
                if growth.bytes_per_step is None:
                    raise units.UnitError(f"{text!r} is per time; max_per_step takes bytes per step (16B or 16B/step), "
                                          "max_growth takes per-time limits")
                value = growth.bytes_per_step
            else:
                value = float(units.parse_size(text))
        except units.UnitError as exc:
            raise err("max_per_step", str(exc)) from None
        limits.append(Limit("max_per_step", signal, "step", value, str(text)))
    if "max_blocks_per_step" in raw:
        value = raw["max_blocks_per_step"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise err("max_blocks_per_step", f"must be a non-negative number of blocks per step, got {value!r}")
        limits.append(Limit("max_blocks_per_step", "blocks", "step", float(value), f"{value:g} blocks/step"))
    return limits


def _parse_verdicts(raw: Any, err: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise err("verdict", f"must be a verdict or a list of them: {', '.join(LABELS)}")
    for value in values:
        if not isinstance(value, str) or value.upper() not in LABELS:
            raise err("verdict", f"unknown verdict {value!r}; known verdicts: {', '.join(LABELS)}")
    return tuple(v.upper() for v in values)


def _parse_tolerance(raw: Any, err: Callable[[str, str], ConfigError]) -> Tolerance:
    items = raw if isinstance(raw, list) else [raw]
    relative = per_s = per_step = 0.0
    for item in items:
        text = str(item).strip()
        try:
            if text.endswith("%"):
                relative = max(relative, float(text[:-1]) / 100)
                if relative < 0:
                    raise ValueError
            else:
                growth = units.parse_growth(text)
                per_s = max(per_s, growth.bytes_per_s or 0.0)
                per_step = max(per_step, growth.bytes_per_step or 0.0)
        except (ValueError, units.UnitError):
            raise err("tolerance", f"not a tolerance: {item!r}; {CHECK_KEYS['tolerance']}") from None
    return Tolerance(relative, per_s, per_step, ", ".join(str(i) for i in items))


# --------------------------------------------------------------------------- evaluation


@dataclass
class Judgement:
    """One limit, verdict or baseline comparison, measured and decided."""

    key: str  # max_growth, max_per_step, max_blocks_per_step, verdict, baseline
    outcome: str  # "pass", "fail" or "undecided"
    text: str  # "rss +0.12 MB/h (95% CI -0.3 to 0.5) <= 0.5MB/h"
    measured: float | None = None
    ci95: tuple[float, float] | None = None
    limit: float | None = None
    signal: str | None = None
    per: str | None = None


def decide(lo: float, hi: float, limit: float) -> str:
    """``fail`` when the whole interval is above ``limit``, ``pass`` when it is at or
    below it, ``undecided`` when it straddles the limit or is missing."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undecided"
    if lo > limit:
        return "fail"
    if hi <= limit:
        return "pass"
    return "undecided"


def _fmt(value: float, unit: str, per: str, suffix: bool = True) -> str:
    """``+1.2 MB/h`` for a per-second figure (shown per hour), ``+16 B/step``, ``+0.05 blocks/step``."""
    if not math.isfinite(value):
        return "n/a"
    scale = 3600 if per == "s" and unit != "blocks" else 1
    if abs(value * scale) < (0.5 if unit != "blocks" else 5e-4):
        value = 0.0  # no "-0 B"
    if unit == "blocks":
        number = f"{value:+,.3g}" if value else "0"
        return f"{number} blocks/{per}" if suffix else number
    if per == "s":
        return f"{units.format_size(value * 3600, signed=True)}/h" if suffix else units.format_size(value * 3600, signed=True)
    return f"{units.format_size(value, signed=True)}/{per}" if suffix else units.format_size(value, signed=True)


def _interval(lo: float, hi: float, unit: str, per: str) -> str:
    return f"95% CI {_fmt(lo, unit, per, suffix=False)} to {_fmt(hi, unit, per)}"


def _figures(growth: Any, per: str) -> tuple[float, tuple[float, float]]:
    if per == "s":
        return float(growth.bytes_per_s), (float(growth.ci95[0]), float(growth.ci95[1]))
    return float(growth.bytes_per_step), (float(growth.ci95_per_step[0]), float(growth.ci95_per_step[1]))


def judge_limit(limit: Limit, growth: Any | None) -> Judgement:
    """Compare one limit with a signal's growth (a :class:`leaklab.analysis.Growth`)."""
    if growth is None:
        hint = " (add the tracemalloc probe: probes = [\"tracemalloc\"])" if limit.signal == "traced" else ""
        return Judgement(limit.key, "undecided", f"{limit.signal}: not recorded by this run{hint}",
                         signal=limit.signal, per=limit.per)
    value, (lo, hi) = _figures(growth, limit.per)
    unit = growth.unit
    outcome = decide(lo, hi, limit.value)
    sign = {"pass": "<=", "fail": ">", "undecided": "~"}[outcome]
    text = f"{limit.signal} {_fmt(value, unit, limit.per)} ({_interval(lo, hi, unit, limit.per)}) {sign} {limit.key} {limit.text}"
    if outcome == "undecided":
        text += " (interval straddles the limit)" if math.isfinite(lo) else " (too few samples for an interval)"
    return Judgement(limit.key, outcome, text, _finite(value), (lo, hi), limit.value, limit.signal, limit.per)


def judge_verdict(allowed: tuple[str, ...], verdict: Any) -> Judgement:
    label = str(verdict.label)
    reason = " ".join(verdict.reasons[:1]) if getattr(verdict, "reasons", None) else ""
    if label in allowed:
        outcome = "pass"
    elif label == "INCONCLUSIVE":
        outcome = "undecided"
    else:
        outcome = "fail"
    text = f"verdict {label} {'in' if outcome == 'pass' else 'not in'} {{{', '.join(allowed)}}}"
    if outcome != "pass" and reason:
        text += f": {reason}"
    return Judgement("verdict", outcome, text, signal=getattr(verdict, "signal", None))


def judge_baseline(check: Check, growth_by_signal: Mapping[str, Any], entry: Mapping[str, Any] | None) -> Judgement | None:
    """Regressed when the new interval's lower bound is above the baseline's upper
    bound plus the tolerance (per step when both runs know their steps)."""
    if entry is None:
        return Judgement("baseline", "pass", "no baseline entry for this check (record one with --update-baseline)")
    signal = entry.get("signal", check.signal)
    growth = growth_by_signal.get(signal)
    if growth is None:
        return Judgement("baseline", "undecided", f"baseline: {signal} not recorded by this run")
    tol = check.tolerance
    per = "step" if tol.per_s == 0 and _finite(entry.get("bytes_per_step")) is not None else "s"
    if per == "step" and not math.isfinite(float(growth.bytes_per_step)):
        per = "s"
    value, (lo, _hi) = _figures(growth, per)
    base_value = _finite(entry.get("bytes_per_step" if per == "step" else "bytes_per_s"))
    base_ci = entry.get("ci95_per_step" if per == "step" else "ci95") or [None, None]
    base_hi = _finite(base_ci[1])
    if base_value is None or base_hi is None:
        return Judgement("baseline", "undecided", f"baseline entry for {signal} has no {per} figures")
    slack = max(tol.relative * abs(base_value), tol.per_step if per == "step" else tol.per_s)
    bound = base_hi + slack
    unit = growth.unit
    outcome = "undecided" if not math.isfinite(lo) else "fail" if lo > bound else "pass"
    sign = ">" if outcome == "fail" else "<="
    text = (f"baseline {signal} {_fmt(value, unit, per)} (CI low {_fmt(lo, unit, per)}) {sign} baseline CI high "
            f"{_fmt(base_hi, unit, per)} + tolerance {tol.text}")
    return Judgement("baseline", outcome, text, _finite(value), None, bound, signal, per)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """A check after its run: passed or not, and why."""

    check: Check
    status: str  # "pass", "fail" or "error" (the run itself failed, or could not start)
    judgements: list[Judgement] = field(default_factory=list)
    run_dir: str | None = None
    run_status: str | None = None
    message: str = ""
    duration_s: float = 0.0
    steps: int = 0
    verdict: str | None = None
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # what --update-baseline records

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def line(self) -> str:
        """The one line the gate prints for this check."""
        head = {"pass": "PASS", "fail": "FAIL", "error": "FAIL"}[self.status]
        if self.status == "error":
            return f"{head}  {self.check.name}: {self.message}"
        parts = []
        for j in self.judgements:
            mark = {"pass": "", "fail": "FAILED ", "undecided": "undecided "}[j.outcome]
            if j.outcome == "undecided" and self.check.fail_undecided:
                mark = "FAILED (undecided) "
            parts.append(mark + j.text)
        return f"{head}  {self.check.name}: " + "; ".join(parts)

    def failures(self) -> list[Judgement]:
        return [j for j in self.judgements if j.outcome == "fail" or (j.outcome == "undecided" and self.check.fail_undecided)]

    def to_dict(self) -> dict[str, Any]:
        c = self.check
        return {
            "name": c.name, "scenario": c.scenario, "variant": c.variant, "params": c.params,
            "status": self.status, "passed": self.passed, "message": self.message,
            "run_dir": self.run_dir, "run_status": self.run_status,
            "duration_s": round(self.duration_s, 3), "steps": self.steps,
            "verdict": self.verdict, "reasons": self.reasons,
            "judgements": [
                {"key": j.key, "outcome": j.outcome, "text": j.text, "signal": j.signal, "per": j.per,
                 "measured": j.measured, "ci95": None if j.ci95 is None else [_finite(x) for x in j.ci95],
                 "limit": j.limit}
                for j in self.judgements
            ],
        }


def evaluate(check: Check, analysis: Any, baseline_entry: Mapping[str, Any] | None | bool = False) -> list[Judgement]:
    """Judge one analysed run against a check's limits (pure: no I/O).

    ``baseline_entry``: ``False`` when no baseline is in use, ``None`` when the
    baseline file has no entry for this check, else the entry.
    """
    judgements = [judge_limit(limit, analysis.growth.get(limit.signal)) for limit in check.limits]
    if check.verdicts:
        judgements.append(judge_verdict(check.verdicts, analysis.verdict))
    if baseline_entry is not False:
        judged = judge_baseline(check, analysis.growth, baseline_entry or None)
        if judged is not None:
            judgements.append(judged)
    return judgements


def figures_of(check: Check, analysis: Any) -> dict[str, Any]:
    """The figures a baseline records for a check."""
    growth = analysis.growth.get(check.signal)
    if growth is None:
        return {}
    return {
        "signal": check.signal,
        "bytes_per_s": _finite(growth.bytes_per_s),
        "ci95": [_finite(x) for x in growth.ci95],
        "bytes_per_step": _finite(growth.bytes_per_step),
        "ci95_per_step": [_finite(x) for x in growth.ci95_per_step],
        "verdict": analysis.verdict.label,
    }


def run_config(check: Check, config: GateConfig, argv: list[str]) -> Any:
    """The runner's :class:`~leaklab.runner.RunConfig` for a check."""
    from leaklab import probes as probe_registry
    from leaklab import runner

    extra: dict[str, Any] = {}
    if check.interval_s is not None:
        extra["interval_s"] = check.interval_s
    profile = check.profile or DEFAULT_PROFILE
    if profile not in probe_registry.PROFILES:
        raise KeyError(f"unknown profile {profile!r}; known profiles: {', '.join(probe_registry.PROFILES)}")
    return runner.RunConfig(
        scenario=check.scenario, variant=check.variant, params=dict(check.params),
        scenario_dirs=[str(d) for d in config.scenario_dirs], duration_s=check.duration_s, steps=check.steps,
        rate=check.rate, warmup=check.warmup, max_rss=check.max_rss, out=str(config.out),
        probes=probe_registry.resolve(profile, list(check.probes)), profile=profile,
        progress=False, argv=argv, **extra,
    )


def validate_runs(config: GateConfig, argv: list[str]) -> list[Any]:
    """Resolve every check's scenario, variant, parameters and probes before anything
    runs; a problem is a :class:`ConfigError` naming the check's key."""
    from leaklab import runner

    prepared = []
    where = _Where(config.path, TABLE)
    for check in config.checks:
        try:
            run_cfg = run_config(check, config, argv)
        except KeyError as exc:
            key = "profile" if "profile" in str(exc) else "probes"
            raise where.error(f"{check.key}.{key}", str(exc).strip("'\"")) from None
        try:
            scenario = scenario_mod.load(scenario_mod.find(check.scenario, run_cfg.scenario_dirs))
        except scenario_mod.ScenarioError as exc:
            raise where.error(f"{check.key}.scenario", str(exc)) from None
        try:
            variant = scenario.resolve_variant(check.variant)
        except scenario_mod.ScenarioError as exc:
            raise where.error(f"{check.key}.variant", str(exc)) from None
        try:
            scenario.resolve_params(variant, check.params)
        except scenario_mod.ScenarioError as exc:
            raise where.error(f"{check.key}.params", str(exc)) from None
        try:
            prepared.append(runner.prepare(run_cfg))
        except (scenario_mod.ScenarioError, units.UnitError, KeyError) as exc:
            raise where.error(check.key, str(exc).strip("'\"")) from None
    return prepared


class _Children:
    """Process groups of the checks' running children, so Ctrl-C can stop them all."""

    def __init__(self) -> None:
        self._pids: set[int] = set()
        self._lock = threading.Lock()

    def seen(self, pid: Any) -> None:
        if isinstance(pid, (int, float)) and pid > 0:
            with self._lock:
                self._pids.add(int(pid))

    def terminate(self) -> None:
        with self._lock:
            pids = list(self._pids)
        for pid in pids:
            with contextlib.suppress(OSError):  # already gone, or not ours to signal
                os.killpg(pid, signal_mod.SIGTERM)


def run_check(check: Check, prepared: Any, config: GateConfig, baseline: Mapping[str, Any] | None,
              children: _Children) -> Outcome:
    """Run one check's scenario, analyse it and judge it. Never raises for what the run does."""
    from leaklab import runner
    from leaklab.analysis import analyze

    started = time.monotonic()
    try:
        result = runner.run(prepared.config, prepared, on_sample=lambda row: children.seen(row.get("pid")))
    except Exception as exc:  # the runner could not start the child at all
        return Outcome(check, "error", message=f"run could not start: {type(exc).__name__}: {exc}",
                       duration_s=time.monotonic() - started)
    outcome = Outcome(check, "pass", run_dir=str(result.run_dir), run_status=result.status,
                      duration_s=result.duration_s, steps=result.steps)
    if result.status != "completed":
        what = {"killed_at_cap": "run was killed at the memory cap", "failed": "run failed",
                "interrupted": "run was interrupted"}.get(result.status, f"run ended {result.status}")
        outcome.status = "error"
        outcome.message = f"{what}: {result.message}" if result.message else what
        return outcome
    try:
        analysis = analyze(result.run_dir)
    except Exception as exc:
        outcome.status = "error"
        outcome.message = f"analysis failed: {type(exc).__name__}: {exc}"
        return outcome
    entry: Mapping[str, Any] | None | bool = False if baseline is None else baseline.get(check.name)
    outcome.judgements = evaluate(check, analysis, entry)
    outcome.verdict = analysis.verdict.label
    outcome.reasons = list(analysis.verdict.reasons)
    outcome.figures = figures_of(check, analysis)
    if outcome.failures():
        outcome.status = "fail"
    return outcome


def default_jobs() -> int:
    """Half the CPUs (at least one): each check's child runs flat out and its growth per
    second depends on the CPU it gets."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    return max(1, available // 2)


def run_gate(config: GateConfig, checks: list[Check], prepared: list[Any], jobs: int,
             baseline: Mapping[str, Any] | None, on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run the checks, ``jobs`` at a time, in config order in the result. A
    KeyboardInterrupt stops every running child (SIGTERM to its group) and is re-raised."""
    children = _Children()
    outcomes: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="leaklab-gate") as pool:
        futures: dict[Future[Outcome], int] = {
            pool.submit(run_check, check, prep, config, baseline, children): i
            for i, (check, prep) in enumerate(zip(checks, prepared, strict=True))
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    outcomes[futures[future]] = outcome
                    if on_done is not None:
                        on_done(outcome)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            children.terminate()
            raise
    return [outcomes[i] for i in sorted(outcomes)]


# --------------------------------------------------------------------------- baseline


def read_baseline(path: Path) -> dict[str, Any]:
    """Baseline entries by check name; a missing file is an empty baseline."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--baseline {path}: not a leaklab baseline file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), dict):
        raise ConfigError(f"--baseline {path}: not a leaklab baseline file (no 'checks' object)")
    if int(data.get("schema", BASELINE_SCHEMA)) > BASELINE_SCHEMA:
        raise ConfigError(f"--baseline {path}: written by a newer leaklab (schema {data.get('schema')}); upgrade leaklab")
    return dict(data["checks"])


def write_baseline(path: Path, outcomes: Iterable[Outcome], previous: Mapping[str, Any]) -> list[str]:
    """Record the figures of every check whose run completed; others keep their old entry."""
    from leaklab import __version__, store

    entries = dict(previous)
    written = []
    for outcome in outcomes:
        if outcome.figures:
            entries[outcome.check.name] = {**outcome.figures, "run": outcome.run_dir, "recorded": store.iso(store.utc_now())}
            written.append(outcome.check.name)
    document = {"schema": BASELINE_SCHEMA, "leaklab": __version__, "checks": dict(sorted(entries.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return written


# --------------------------------------------------------------------------- outputs


def exit_code(outcomes: Iterable[Outcome]) -> int:
    return EXIT_PASS if all(o.passed for o in outcomes) else EXIT_FAIL


def to_json(outcomes: list[Outcome], config: GateConfig) -> dict[str, Any]:
    code = exit_code(outcomes)
    return {
        "passed": code == EXIT_PASS,
        "exit_code": code,
        "config": str(config.path),
        "summary": {"checks": len(outcomes), "passed": sum(o.passed for o in outcomes),
                    "failed": sum(not o.passed for o in outcomes)},
        "rule": "a limit fails when the whole 95% interval is above it; an interval straddling it is undecided",
        "checks": [o.to_dict() for o in outcomes],
    }


def junit_xml(outcomes: list[Outcome]) -> bytes:
    """JUnit XML: one testcase per check; a broken limit is a failure, a run that failed an error."""
    suite = ET.Element("testsuite", {
        "name": "leaklab.gate",
        "tests": str(len(outcomes)),
        "failures": str(sum(o.status == "fail" for o in outcomes)),
        "errors": str(sum(o.status == "error" for o in outcomes)),
        "skipped": "0",
        "time": f"{sum(o.duration_s for o in outcomes):.3f}",
    })
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", {
            "classname": "leaklab.gate", "name": o.check.name, "time": f"{o.duration_s:.3f}",
        })
        props = ET.SubElement(case, "properties")
        for key, value in (("scenario", o.check.scenario), ("variant", o.check.variant or ""),
                           ("run_dir", o.run_dir or ""), ("verdict", o.verdict or "")):
            ET.SubElement(props, "property", {"name": key, "value": str(value)})
        for j in o.judgements:
            if j.measured is not None:
                ET.SubElement(props, "property", {"name": f"{j.key}.measured", "value": repr(j.measured)})
        if o.status == "error":
            ET.SubElement(case, "error", {"message": o.message, "type": o.run_status or "run"}).text = o.message
        elif o.status == "fail":
            failed = o.failures()
            message = "; ".join(j.text for j in failed)
            ET.SubElement(case, "failure", {"message": message, "type": ",".join(j.key for j in failed)}).text = o.line()
        body = [o.line()]
        if o.reasons:
            body.append("analysis: " + " ".join(o.reasons))
        if o.run_dir:
            body.append(f"run: {o.run_dir}")
        ET.SubElement(case, "system-out").text = "\n".join(body)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def select(config: GateConfig, names: Iterable[str]) -> GateConfig:
    """Only the named checks (``--check``); an unknown name is a ConfigError listing the known ones."""
    wanted = list(names)
    if not wanted:
        return config
    known = {c.name: c for c in config.checks}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ConfigError(f"--check {missing[0]!r}: no such check; known checks: {', '.join(known)}")
    return replace(config, checks=[known[n] for n in wanted])
