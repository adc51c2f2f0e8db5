"""The gate's config, decision rule, baseline and JUnit output (no child processes here;
tests/test_gate_cli.py runs real checks)."""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from leaklab import gate
from leaklab.analysis.growth import empty_growth
from leaklab.analysis.verdict import Verdict


def _config(tmp_path: Path, body: str, name: str = "pyproject.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def _growth(
    signal: str = "rss",
    per_s: float = 0.0,
    ci: tuple[float, float] = (0.0, 0.0),
    per_step: float = 0.0,
    ci_step: tuple[float, float] = (0.0, 0.0),
):
    return dataclasses.replace(
        empty_growth(signal),
        bytes_per_s=per_s,
        ci95=ci,
        bytes_per_step=per_step,
        ci95_per_step=ci_step,
        n_samples=40,
    )


# ----------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("lo", "hi", "limit", "expected"),
    [
        (10.0, 20.0, 5.0, "fail"),  # the whole interval above the limit
        (1.0, 4.0, 5.0, "pass"),  # the whole interval at or below it
        (1.0, 5.0, 5.0, "pass"),
        (4.0, 6.0, 5.0, "undecided"),  # straddles: noise, not evidence
        (5.0, 9.0, 5.0, "undecided"),
        (math.nan, math.nan, 5.0, "undecided"),
    ],
)
def test_decision_rule_uses_the_whole_interval(
    lo: float, hi: float, limit: float, expected: str
) -> None:
    assert gate.decide(lo, hi, limit) == expected


def test_limit_judgement_per_time_and_per_step() -> None:
    per_hour = gate.Limit("max_growth", "rss", "s", 0.5e6 / 3600, "0.5MB/h")
    over = gate.judge_limit(per_hour, _growth(per_s=1e6 / 3600, ci=(0.8e6 / 3600, 1.2e6 / 3600)))
    assert over.outcome == "fail"
    assert over.text == "rss +1 MB/h (95% CI +800 KB to +1.2 MB/h) > max_growth 0.5MB/h"
    per_step = gate.Limit("max_per_step", "rss", "step", 16, "16B")
    under = gate.judge_limit(per_step, _growth(per_step=2, ci_step=(-3, 7)))
    assert under.outcome == "pass" and under.text.startswith(
        "rss +2 B/step (95% CI -3 B to +7 B/step) <= max_per_step 16B"
    )
    missing = gate.judge_limit(gate.Limit("max_growth", "traced", "s", 1.0, "1B/s"), None)
    assert missing.outcome == "undecided" and "tracemalloc" in missing.text


def test_verdict_judgement() -> None:
    allowed = ("NO_LEAK", "PLATEAU")
    assert gate.judge_verdict(allowed, Verdict("NO_LEAK", ["flat"])).outcome == "pass"
    leak = gate.judge_verdict(allowed, Verdict("LEAK", ["RSS grows 2 KB/step."]))
    assert (
        leak.outcome == "fail"
        and leak.text == "verdict LEAK not in {NO_LEAK, PLATEAU}: RSS grows 2 KB/step."
    )
    assert (
        gate.judge_verdict(allowed, Verdict("INCONCLUSIVE", ["too short"])).outcome == "undecided"
    )


def test_baseline_regression_needs_the_new_interval_clear_of_the_old_plus_tolerance() -> None:
    check = gate.Check(
        name="c",
        key="checks[0]",
        scenario="s",
        verdicts=("NO_LEAK",),
        tolerance=gate.Tolerance(relative=0.25),
    )
    entry = {
        "signal": "rss",
        "bytes_per_s": 10.0,
        "ci95": [8.0, 12.0],
        "bytes_per_step": 100.0,
        "ci95_per_step": [90.0, 110.0],
    }
    # bound = 110 + 25% of 100 = 135 bytes/step
    regressed = gate.judge_baseline(
        check, {"rss": _growth(per_step=160, ci_step=(140, 180))}, entry
    )
    assert regressed is not None and regressed.outcome == "fail" and regressed.limit == 135
    within = gate.judge_baseline(check, {"rss": _growth(per_step=150, ci_step=(130, 170))}, entry)
    assert within is not None and within.outcome == "pass"
    absolute = dataclasses.replace(check, tolerance=gate.Tolerance(per_step=64))
    assert (
        gate.judge_baseline(
            absolute, {"rss": _growth(per_step=160, ci_step=(140, 180))}, entry
        ).outcome
        == "pass"
    )
    none = gate.judge_baseline(check, {"rss": _growth()}, None)
    assert none is not None and none.outcome == "pass" and "--update-baseline" in none.text


# ----------------------------------------------------------------- config


GOOD = """
[tool.leaklab.gate]
duration = "4s"
tolerance = ["10%", "1KB/step"]
baseline = "base.json"

[[tool.leaklab.gate.checks]]
scenario = "scen/retain_bytes.py"
variant = "fixed"
params = { size = "2048" }
max_growth = "0.5MB/h"
max_per_step = "16B"
max_blocks_per_step = 0.05
verdict = "NO_LEAK"

[[tool.leaklab.gate.checks]]
name = "agent"
scenario = "http-agent"
steps = 500
rate = "200/s"
max_growth = "64B/step"
verdict = ["no_leak", "PLATEAU"]
undecided = "fail"
"""


def test_config_parses_defaults_paths_and_limits(tmp_path: Path) -> None:
    config = gate.load_config(_config(tmp_path, GOOD))
    first, second = config.checks
    assert first.name == "retain-bytes[fixed]" and first.scenario == str(
        (tmp_path / "scen/retain_bytes.py").resolve()
    )
    assert first.duration_s == 4.0 and first.params == {"size": "2048"}
    assert [(lim.key, lim.signal, lim.per) for lim in first.limits] == [
        ("max_growth", "rss", "s"),
        ("max_per_step", "rss", "step"),
        ("max_blocks_per_step", "blocks", "step"),
    ]
    assert first.limits[0].value == pytest.approx(0.5e6 / 3600)
    assert first.tolerance == gate.Tolerance(relative=0.10, per_step=1000, text="10%, 1KB/step")
    assert (
        second.name == "agent"
        and second.steps == 500
        and second.duration_s is None
        and second.rate == 200
    )
    assert (
        second.limits[0].per == "step"
        and second.verdicts == ("NO_LEAK", "PLATEAU")
        and second.fail_undecided
    )
    assert config.baseline == tmp_path / "base.json" and config.out == tmp_path / "runs/gate"
    assert tmp_path / "scenarios" in config.scenario_dirs


def test_config_is_found_in_a_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, GOOD)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert gate.load_config().path == tmp_path / "pyproject.toml"


def test_standalone_config_file_takes_top_level_checks(tmp_path: Path) -> None:
    path = _config(tmp_path, '[[checks]]\nscenario = "x.py"\nverdict = "NO_LEAK"\n', "gate.toml")
    assert gate.load_config(path).checks[0].scenario == str(tmp_path / "x.py")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            (
                '[tool.leaklab.gate]\nmax_grwth = "1MB/h"\n[[tool.leaklab.gate.checks]]\n'
                'scenario = "a"\nverdict = "NO_LEAK"\n'
            ),
            "tool.leaklab.gate.max_grwth: unknown key; the gate table takes checks, baseline",
        ),
        (
            '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
            'verdict = "NO_LEAK"\n[[tool.leaklab.gate.checks]]\nscenario = "b"\n'
            'max_per_stp = "1B"\n',
            "tool.leaklab.gate.checks[1].max_per_stp: unknown key; a check takes: name, scenario",
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'max_growth = "5MB"\n'
            ),
            (
                "checks[0].max_growth: not a growth rate: '5MB'; accepted forms: a size per time "
                "or per step"
            ),
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'max_per_step = "1KB/h"\n'
            ),
            "checks[0].max_per_step: '1KB/h' is per time",
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'verdict = "LEAKY"\n'
            ),
            (
                "checks[0].verdict: unknown verdict 'LEAKY'; known verdicts: LEAK, PLATEAU, "
                "NO_LEAK, INCONCLUSIVE"
            ),
        ),
        (
            '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n',
            "checks[0].max_growth: a check needs at least one limit",
        ),
        (
            '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nverdict = "NO_LEAK"\n',
            "checks[0].scenario: required",
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'verdict = "NO_LEAK"\nduration = "soon"\n'
            ),
            "checks[0].duration: not a duration: 'soon'; accepted forms:",
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'verdict = "NO_LEAK"\nduration = "1s"\nsteps = 5\n'
            ),
            "checks[0].steps: give duration or steps, not both",
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'verdict = "NO_LEAK"\nsignal = "blocks"\n'
            ),
            "checks[0].signal: unknown signal 'blocks'; one of rss, uss, traced",
        ),
        (
            (
                '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'verdict = "NO_LEAK"\ntolerance = "lots"\n'
            ),
            "checks[0].tolerance: not a tolerance: 'lots'",
        ),
        (
            '[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
            'verdict = "NO_LEAK"\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
            'verdict = "NO_LEAK"\n',
            "checks[1].name: duplicate check name 'a' (also checks[0])",
        ),
        (
            (
                '[tool.leaklab.gate]\njobs = 0\n[[tool.leaklab.gate.checks]]\nscenario = "a"\n'
                'verdict = "NO_LEAK"\n'
            ),
            "tool.leaklab.gate.jobs: must be a positive integer, got 0",
        ),
        (
            "[tool.leaklab.gate]\nchecks = []\n",
            "tool.leaklab.gate.checks: needs at least one check",
        ),
        ("[tool.other]\nx = 1\n", "no [tool.leaklab.gate] table"),
        ("[tool.leaklab.gate\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key_and_the_accepted_forms(
    tmp_path: Path, body: str, message: str
) -> None:
    path = _config(tmp_path, body)
    with pytest.raises(gate.ConfigError) as info:
        gate.load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_select_unknown_check_lists_known_ones(tmp_path: Path) -> None:
    config = gate.load_config(_config(tmp_path, GOOD))
    assert [c.name for c in gate.select(config, ["agent"]).checks] == ["agent"]
    with pytest.raises(
        gate.ConfigError,
        match=r"--check 'nope': no such check; known checks: retain-bytes\[fixed\], agent",
    ):
        gate.select(config, ["nope"])


# ----------------------------------------------------------------- baseline file and JUnit


def _outcome(
    name: str, status: str, judgements: list[gate.Judgement] | None = None, message: str = ""
) -> gate.Outcome:
    check = gate.Check(
        name=name, key="checks[0]", scenario="s.py", variant="fixed", verdicts=("NO_LEAK",)
    )
    return gate.Outcome(
        check,
        status,
        judgements or [],
        run_dir="runs/x",
        run_status="completed",
        message=message,
        duration_s=1.5,
        steps=10,
        figures={
            "signal": "rss",
            "bytes_per_s": 1.0,
            "ci95": [0.0, 2.0],
            "bytes_per_step": 0.5,
            "ci95_per_step": [0.0, 1.0],
            "verdict": "NO_LEAK",
        },
    )


def test_baseline_round_trip_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "baseline.json"
    written = gate.write_baseline(
        path, [_outcome("new", "pass")], {"old": {"signal": "rss", "bytes_per_s": 3.0}}
    )
    assert written == ["new"]
    entries = gate.read_baseline(path)
    assert set(entries) == {"new", "old"} and entries["new"]["ci95_per_step"] == [0.0, 1.0]
    assert json.loads(path.read_text())["schema"] == gate.BASELINE_SCHEMA
    assert gate.read_baseline(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(gate.ConfigError, match="not a leaklab baseline file"):
        gate.read_baseline(tmp_path / "bad.json")


def test_junit_xml_counts_and_escapes() -> None:
    bad = gate.Judgement(
        "max_growth",
        "fail",
        "rss +1 MB/h > max_growth <0.5MB/h> & more",
        1.0,
        (0.5, 1.5),
        0.1,
        "rss",
        "s",
    )
    outcomes = [
        _outcome(
            "ok <fixed>",
            "pass",
            [gate.Judgement("verdict", "pass", "verdict NO_LEAK in {NO_LEAK}")],
        ),
        _outcome("leaky & co", "fail", [bad]),
        _outcome(
            "crashed", "error", message="run failed: scenario raised in step: ValueError: boom"
        ),
    ]
    root = ET.fromstring(gate.junit_xml(outcomes))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["ok <fixed>", "leaky & co", "crashed"]
    failure = cases[1].find("failure")
    assert (
        failure is not None
        and failure.get("message") == "rss +1 MB/h > max_growth <0.5MB/h> & more"
    )
    assert failure.get("type") == "max_growth"
    error = cases[2].find("error")
    assert error is not None and "ValueError: boom" in (error.get("message") or "")
    assert gate.exit_code(outcomes) == gate.EXIT_FAIL
    assert gate.exit_code(outcomes[:1]) == gate.EXIT_PASS


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            'profile = "deepest"',
            "checks[0].profile: unknown profile 'deepest'; known profiles: rss, default, deep",
        ),
        (
            'probes = ["tracemalloc", "nope"]',
            "checks[0].probes: unknown probe 'nope'; known probes:",
        ),
        (
            'variant = "leeky"',
            (
                "checks[0].variant: scenario 'retain-bytes' has no variant 'leeky'; known "
                "variants: leaky, fixed"
            ),
        ),
        (
            "params = { sise = 1 }",
            (
                "checks[0].params: scenario 'retain-bytes' has no parameter 'sise'; known "
                "parameters: size"
            ),
        ),
    ],
)
def test_run_settings_are_checked_before_anything_runs(
    tmp_path: Path, extra: str, message: str
) -> None:
    scenario = Path(__file__).parent / "scenarios" / "retain_bytes.py"
    path = _config(
        tmp_path,
        f'[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "{scenario}"\n'
        f'verdict = "NO_LEAK"\n{extra}\n',
    )
    config = gate.load_config(path)
    with pytest.raises(gate.ConfigError) as info:
        gate.validate_runs(config, ["leaklab", "gate"])
    assert message in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_gate_runs_without_in_child_probes_unless_asked(tmp_path: Path) -> None:
    scenario = Path(__file__).parent / "scenarios" / "retain_bytes.py"
    path = _config(
        tmp_path,
        f'[tool.leaklab.gate]\n[[tool.leaklab.gate.checks]]\nscenario = "{scenario}"\n'
        'verdict = "NO_LEAK"\n[[tool.leaklab.gate.checks]]\nname = "traced"\n'
        f'scenario = "{scenario}"\nsignal = "traced"\nmax_growth = "1MB/h"\n'
        'probes = ["tracemalloc"]\n',
    )
    config = gate.load_config(path)
    plain, traced = (gate.run_config(check, config, []) for check in config.checks)
    assert (plain.profile, plain.probes) == ("rss", [])
    assert traced.probes == ["tracemalloc"] and traced.progress is False
