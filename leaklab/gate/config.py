"""Gate configuration: the constants, the check and limit types, and reading and
validating ``[tool.leaklab.gate]`` (:func:`load_config`, :func:`parse_config`,
:func:`select`)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from leaklab import units
from leaklab.kinds import VERDICTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
TABLE = "tool.leaklab.gate"
SIGNALS = ("rss", "uss", "traced")
BASELINE_SCHEMA = 1

#: Keys a check may have (and, except name/scenario, the gate table may set as defaults).
CHECK_KEYS: dict[str, str] = {
    "name": "a unique name (default: scenario[variant])",
    "scenario": "a scenario name (leaklab list) or a path to a .py file",
    "variant": "the scenario variant",
    "params": 'a table of scenario parameters, e.g. { response_size = "2KB" }',
    "duration": units.DURATION_FORMS,
    "grace": "how long past duration a stuck run may go before it is killed (default 30s): "
    + units.DURATION_FORMS,
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
    "verdict": "an allowed verdict or a list of them: " + ", ".join(VERDICTS),
    "tolerance": (
        "baseline tolerance: a percentage (25%), a growth (0.5MB/h, 16B/step), or a list of them"
    ),
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
    grace_s: float | None = None
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
            raise ConfigError(
                f"no pyproject.toml in {Path.cwd()} or above; pass --config FILE "
                f"or add a [{TABLE}] table with [[{TABLE}.checks]]"
            )
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
        raise ConfigError(
            f"{file}: no [{TABLE}] table; add one with [[{TABLE}.checks]] entries "
            "(docs/ci.md has an example)"
        )
    return parse_config(table, file, prefix)


def parse_config(table: Mapping[str, Any], file: Path, prefix: str = TABLE) -> GateConfig:
    """Validate a gate table (already parsed TOML) read from ``file``."""
    where = Where(file, prefix)
    if not isinstance(table, Mapping):
        raise where.error("", "must be a table")
    allowed = (set(CHECK_KEYS) | set(GATE_KEYS)) - {"name", "scenario"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise where.error(
            unknown[0],
            f"unknown key; the gate table takes {_listing(GATE_KEYS)}, and defaults "
            f"for every check: {', '.join(k for k in CHECK_KEYS if k not in ('name', 'scenario'))}",
        )
    base = file.parent
    raw_checks = table.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise where.error(
            "checks",
            f"needs at least one check: add [[{TABLE}.checks]] with a scenario and its limits",
        )
    defaults = {k: v for k, v in table.items() if k in CHECK_KEYS}
    checks = [
        _parse_check(
            _with_defaults(defaults, _table(raw, where, f"checks[{i}]")),
            where,
            f"checks[{i}]",
            base,
        )
        for i, raw in enumerate(raw_checks)
    ]
    seen: dict[str, str] = {}
    for check in checks:
        if check.name in seen:
            raise where.error(
                f"{check.key}.name",
                f"duplicate check name {check.name!r} (also {seen[check.name]}); "
                "give each check a unique name",
            )
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
        path=file,
        checks=checks,
        baseline=(base / baseline) if baseline else None,
        out=base / out,
        jobs=jobs,
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
class Where:
    """Where a config key lives (file and table), for errors that point at it."""

    file: Path
    prefix: str

    def error(self, key: str, message: str) -> ConfigError:
        dotted = ".".join(part for part in (self.prefix, key) if part)
        return ConfigError(
            f"{self.file}: {dotted}: {message}" if dotted else f"{self.file}: {message}"
        )


def _listing(keys: Mapping[str, str]) -> str:
    return ", ".join(keys)


def _table(raw: Any, where: Where, key: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise where.error(key, f"must be a table ([[{TABLE}.checks]]), got {type(raw).__name__}")
    return dict(raw)


def _parse_check(raw: dict[str, Any], where: Where, key: str, base: Path) -> Check:
    unknown = sorted(set(raw) - set(CHECK_KEYS))
    if unknown:
        raise where.error(
            f"{key}.{unknown[0]}", f"unknown key; a check takes: {_listing(CHECK_KEYS)}"
        )

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
        raise err(
            "signal",
            f"unknown signal {signal!r}; one of {', '.join(SIGNALS)} "
            "(allocated blocks have their own key, max_blocks_per_step)",
        )
    limits = _parse_limits(raw, signal, err)
    verdicts = _parse_verdicts(raw.get("verdict"), err)
    if not limits and not verdicts:
        raise err(
            "max_growth",
            "a check needs at least one limit: max_growth, max_per_step, "
            "max_blocks_per_step or verdict",
        )
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
    name = raw.get("name") or (
        Path(scenario).stem.replace("_", "-") if scenario.endswith(".py") else scenario
    ) + (f"[{variant}]" if variant else "")
    if not isinstance(name, str):
        raise err("name", f"must be a string, got {name!r}")
    return Check(
        name=name,
        key=key,
        scenario=scenario,
        variant=variant,
        params=dict(params),
        duration_s=parse("duration", units.parse_duration),
        grace_s=parse("grace", units.parse_duration),
        steps=steps,
        rate=parse("rate", units.parse_rate),
        interval_s=parse("interval", units.parse_duration),
        warmup=parse("warmup", units.parse_steps_or_duration),
        max_rss=parse("max_rss", units.parse_size),
        profile=profile,
        probes=tuple(probes),
        signal=signal,
        limits=tuple(limits),
        verdicts=verdicts,
        tolerance=_parse_tolerance(raw.get("tolerance", DEFAULT_TOLERANCE), err),
        fail_undecided=undecided == "fail",
    )


def _parse_limits(
    raw: Mapping[str, Any], signal: str, err: Callable[[str, str], ConfigError]
) -> list[Limit]:
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
            limits.append(
                Limit("max_growth", signal, "step", growth.bytes_per_step or 0.0, str(text))
            )
    if "max_per_step" in raw:
        text = raw["max_per_step"]
        try:
            if isinstance(text, str) and "/" in text:
                growth = units.parse_growth(text)
                if growth.bytes_per_step is None:
                    raise units.UnitError(
                        f"{text!r} is per time; max_per_step takes bytes per step (16B or "
                        "16B/step), max_growth takes per-time limits"
                    )
                value = growth.bytes_per_step
            else:
                value = float(units.parse_size(text))
        except units.UnitError as exc:
            raise err("max_per_step", str(exc)) from None
        limits.append(Limit("max_per_step", signal, "step", value, str(text)))
    if "max_blocks_per_step" in raw:
        value = raw["max_blocks_per_step"]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < 0
            or not math.isfinite(value)
        ):
            raise err(
                "max_blocks_per_step",
                f"must be a non-negative number of blocks per step, got {value!r}",
            )
        limits.append(
            Limit("max_blocks_per_step", "blocks", "step", float(value), f"{value:g} blocks/step")
        )
    return limits


def _parse_verdicts(raw: Any, err: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise err("verdict", f"must be a verdict or a list of them: {', '.join(VERDICTS)}")
    for value in values:
        if not isinstance(value, str) or value.upper() not in VERDICTS:
            raise err(
                "verdict", f"unknown verdict {value!r}; known verdicts: {', '.join(VERDICTS)}"
            )
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
            raise err(
                "tolerance", f"not a tolerance: {item!r}; {CHECK_KEYS['tolerance']}"
            ) from None
    return Tolerance(relative, per_s, per_step, ", ".join(str(i) for i in items))


def select(config: GateConfig, names: Iterable[str]) -> GateConfig:
    """Only the named checks (``--check``); an unknown name is a ConfigError listing the known
    ones."""
    wanted = list(names)
    if not wanted:
        return config
    known = {c.name: c for c in config.checks}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ConfigError(
            f"--check {missing[0]!r}: no such check; known checks: {', '.join(known)}"
        )
    return replace(config, checks=[known[n] for n in wanted])
