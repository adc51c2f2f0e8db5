"""Running the checks: each check's scenario run in a child, analysed and judged
(:func:`run_gate`, ``jobs`` at a time), with its :class:`Outcome`."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from leaklab import scenario as scenario_mod
from leaklab import units
from leaklab.gate.config import DEFAULT_PROFILE, TABLE, Check, GateConfig, Where
from leaklab.gate.judge import Judgement, finite_or_none, judge_baseline, judge_limit, judge_verdict
from leaklab.kinds import Status

#: What the gate says about a run that did not complete.
RUN_ENDED = {
    Status.KILLED_AT_CAP: "run was killed at the memory cap",
    Status.FAILED: "run failed",
    Status.TIMED_OUT: "run timed out",
    Status.INTERRUPTED: "run was interrupted",
}


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
        return [
            j
            for j in self.judgements
            if j.outcome == "fail" or (j.outcome == "undecided" and self.check.fail_undecided)
        ]

    def to_dict(self) -> dict[str, Any]:
        c = self.check
        return {
            "name": c.name,
            "scenario": c.scenario,
            "variant": c.variant,
            "params": c.params,
            "status": self.status,
            "passed": self.passed,
            "message": self.message,
            "run_dir": self.run_dir,
            "run_status": self.run_status,
            "duration_s": round(self.duration_s, 3),
            "steps": self.steps,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "judgements": [
                {
                    "key": j.key,
                    "outcome": j.outcome,
                    "text": j.text,
                    "signal": j.signal,
                    "per": j.per,
                    "measured": j.measured,
                    "ci95": None if j.ci95 is None else [finite_or_none(x) for x in j.ci95],
                    "limit": j.limit,
                }
                for j in self.judgements
            ],
        }


def evaluate(
    check: Check, analysis: Any, baseline_entry: Mapping[str, Any] | None | bool = False
) -> list[Judgement]:
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
        "bytes_per_s": finite_or_none(growth.per_s),
        "ci95": [finite_or_none(x) for x in growth.ci95],
        "bytes_per_step": finite_or_none(growth.per_step),
        "ci95_per_step": [finite_or_none(x) for x in growth.ci95_per_step],
        "verdict": analysis.verdict.label,
    }


def run_config(check: Check, config: GateConfig, argv: list[str]) -> Any:
    """The runner's :class:`~leaklab.runner.RunConfig` for a check."""
    from leaklab import probes as probe_registry
    from leaklab import runner

    extra: dict[str, Any] = {}
    if check.interval_s is not None:
        extra["interval_s"] = check.interval_s
    if check.grace_s is not None:
        extra["grace_s"] = check.grace_s
    profile = check.profile or DEFAULT_PROFILE
    if profile not in probe_registry.PROFILES:
        raise KeyError(
            f"unknown profile {profile!r}; known profiles: {', '.join(probe_registry.PROFILES)}"
        )
    return runner.RunConfig(
        scenario=check.scenario,
        variant=check.variant,
        params=dict(check.params),
        scenario_dirs=[str(d) for d in config.scenario_dirs],
        duration_s=check.duration_s,
        steps=check.steps,
        rate=check.rate,
        warmup=check.warmup,
        max_rss=check.max_rss,
        out=str(config.out),
        probes=probe_registry.resolve(profile, list(check.probes)),
        profile=profile,
        progress=False,
        argv=argv,
        **extra,
    )


#: The step of the runner's preparation an error comes from -> the check key it points at.
PREPARE_STEP_KEYS = {
    "find": "scenario",
    "load": "scenario",
    "resolve_variant": "variant",
    "resolve_params": "params",
}


def _key_of(check: Check, exc: BaseException) -> str:
    """The check key a preparation error is about: the innermost preparation step it was raised
    in."""
    steps = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    step = next(
        (PREPARE_STEP_KEYS[name] for name in reversed(steps) if name in PREPARE_STEP_KEYS), None
    )
    return f"{check.key}.{step}" if step else check.key


def validate_runs(config: GateConfig, argv: list[str]) -> list[Any]:
    """Prepare every check's run (the runner's own checks: scenario, variant, parameters,
    probes) before anything runs; a problem is a :class:`ConfigError` naming the check's key."""
    from leaklab import runner

    prepared = []
    where = Where(config.path, TABLE)
    for check in config.checks:
        try:
            run_cfg = run_config(check, config, argv)
        except KeyError as exc:
            key = "profile" if "profile" in str(exc) else "probes"
            raise where.error(f"{check.key}.{key}", str(exc).strip("'\"")) from None
        try:
            prepared.append(runner.prepare(run_cfg))
        except (scenario_mod.ScenarioError, units.UnitError) as exc:
            raise where.error(_key_of(check, exc), str(exc)) from None
        except KeyError as exc:
            raise where.error(check.key, str(exc.args[0] if exc.args else exc)) from None
    return prepared


def run_check(
    check: Check,
    prepared: Any,
    config: GateConfig,
    baseline: Mapping[str, Any] | None,
    interrupt: threading.Event,
) -> Outcome:
    """Run one check's scenario, analyse it and judge it. Never raises for what the run does;
    ``interrupt`` stops its run as Ctrl-C does."""
    from leaklab import runner
    from leaklab.analysis import analyze

    started = time.monotonic()
    try:
        result = runner.run(prepared.config, prepared, interrupt=interrupt)
    except Exception as exc:  # the runner could not start the child at all
        return Outcome(
            check,
            "error",
            message=f"run could not start: {type(exc).__name__}: {exc}",
            duration_s=time.monotonic() - started,
        )
    outcome = Outcome(
        check,
        "pass",
        run_dir=str(result.run_dir),
        run_status=result.status,
        duration_s=result.duration_s,
        steps=result.steps,
    )
    if result.status != Status.COMPLETED:
        what = RUN_ENDED.get(result.status, f"run ended {result.status}")
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


def run_gate(
    config: GateConfig,
    checks: list[Check],
    prepared: list[Any],
    jobs: int,
    baseline: Mapping[str, Any] | None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the checks, ``jobs`` at a time, in config order in the result. A
    KeyboardInterrupt interrupts every running check's run, as Ctrl-C interrupts ``leaklab run``
    (each run stops its child and is kept, marked interrupted), and is re-raised once they
    have stopped."""
    interrupt = threading.Event()
    outcomes: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="leaklab-gate") as pool:
        futures: dict[Future[Outcome], int] = {
            pool.submit(run_check, check, prep, config, baseline, interrupt): i
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
            interrupt.set()
            raise
    return [outcomes[i] for i in sorted(outcomes)]
