"""Bad input and hostile runs at the command line: a clear message and the documented exit
code, never a traceback (I/O errors on output paths, run files of the wrong shape, terminal
escapes from the child, and the smaller cases of issue 13)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_support import wait_for_samples

from leaklab import runner, store
from leaklab.analysis import analyze

SCENARIOS = Path(__file__).parent / "scenarios"
MISBEHAVES = str(SCENARIOS / "misbehaves.py")
RETAIN = str(SCENARIOS / "retain_bytes.py")
UNWRITABLE = "/proc/leaklab-cannot-write-here"


def _cli(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _usage_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """One real run with the default probes: gc type counts, tracemalloc sites, chains."""
    out = tmp_path_factory.mktemp("recorded")
    result = runner.run(
        runner.RunConfig(
            scenario=RETAIN,
            duration_s=3,
            rate=2000,
            interval_s=0.1,
            out=str(out / "runs"),
            progress=False,
            probes=["tracemalloc", "gc-types", "retention"],
            profile="default",
        )
    )
    assert result.status == "completed"
    return result.run_dir


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def _rewrite_meta(run: Path, change) -> None:
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps(change(meta)))


def _rewrite_event(run: Path, kind: str, change) -> None:
    lines = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    event = next(e for e in lines if e["kind"] == kind)
    change(event)
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))


# -- 5: I/O errors on output paths -------------------------------------------------------------


def test_output_paths_that_cannot_be_written_exit_2_with_a_message(tmp_path, recorded):
    _usage_error(
        _cli("run", RETAIN, "--steps", "10", "--out", UNWRITABLE),
        "cannot create a run directory",
        "choose another --out",
    )
    _usage_error(_cli("report", str(recorded), "--out", UNWRITABLE), "cannot write the report")

    config = tmp_path / "pyproject.toml"
    config.write_text(
        '[tool.leaklab.gate]\nduration = "1s"\n[[tool.leaklab.gate.checks]]\n'
        f'scenario = "{RETAIN}"\nvariant = "fixed"\nmax_per_step = "16B"\n',
        encoding="utf-8",
    )
    _usage_error(
        _cli("gate", "--config", str(config), "--out", UNWRITABLE), "--out", "cannot create"
    )
    junit = _cli(
        "gate",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "gate"),
        "--json",
        "--junit-xml",
        f"{UNWRITABLE}/j.xml",
    )
    _usage_error(junit, "--junit-xml's folder")
    assert not (tmp_path / "gate").exists() or not any((tmp_path / "gate").iterdir())  # nothing ran


# -- 6: valid JSON of the wrong shape ------------------------------------------------------------

MALFORMED = {
    "meta is a list": (
        lambda run: (run / "meta.json").write_text("[1]"),
        "meta.json must hold a JSON object",
    ),
    "config is a string": (
        lambda run: _rewrite_meta(run, lambda m: {**m, "config": "fast"}),
        "config must be an object or null, not a string",
    ),
    "types is a list": (
        lambda run: _rewrite_event(run, "gc_types", lambda e: e.update(types=["dict"])),
        "gc_types event: types must be an object, not a list",
    ),
    "site size is big": (
        lambda run: _rewrite_event(
            run, "tracemalloc_snapshot", lambda e: e["sites"][0].update(size="big")
        ),
        "sites[0].size must be a number or null, not a string",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_run_is_one_clear_error_in_every_reader(tmp_path, recorded, case):
    spoil, message = MALFORMED[case]
    run = _copy(recorded, tmp_path / "run")
    spoil(run)
    with pytest.raises(store.RunFormatError, match="must"):
        store.read_run(run)
    _usage_error(_cli("analyze", str(run)), message)
    _usage_error(_cli("report", str(run), "--out", str(tmp_path / "report")), message)
    _usage_error(_cli("plan", str(run), "--limit", "150MB"), message)


def test_readers_of_many_runs_skip_a_malformed_run_with_a_warning(tmp_path, recorded):
    folder = tmp_path / "runs"
    good = _copy(recorded, folder / "20000101T000000Z-good")
    _rewrite_meta(good, lambda m: {**m, "start": "2000-01-01T00:00:00.000Z"})
    bad_meta = _copy(recorded, folder / "20990101T000000Z-bad-meta")
    MALFORMED["config is a string"][0](bad_meta)
    bad_events = _copy(recorded, folder / "20990101T000001Z-bad-events")
    MALFORMED["types is a list"][0](bad_events)
    _rewrite_meta(bad_events, lambda m: {**m, "start": "2099-01-01T00:00:01.000Z"})

    done = _cli("analyze", "--runs", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"run       {good}" in done.stdout
    assert (
        f"warning: skipped {bad_meta}" in done.stderr
        and f"warning: skipped {bad_events}" in done.stderr
    )
    report = _cli("report", "--runs", str(folder), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert str(good) in report.stdout and "warning: skipped" in report.stderr


#: Fields whose contents are free-form by design: what a reader shows, never computes with.
FREE_FORM = frozenset(
    {"params", "versions", "host", "argv", "traceback", "probes", "lines", "description"}
)


def _mutations(value):
    """Every field path of a JSON value, each with wrong-typed replacements."""
    wrong = ("big", [1])
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in FREE_FORM:
                continue
            for path, replacement in _mutations(inner):
                yield (key, *path), replacement
            for replacement in wrong:
                yield (key,), replacement
    elif isinstance(value, list) and value:
        for path, replacement in _mutations(value[0]):
            yield (0, *path), replacement


def _set(value, path, replacement):
    value = json.loads(json.dumps(value))
    target = value
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = replacement
    return value


def test_no_wrong_typed_field_gets_past_the_reader_into_a_traceback(tmp_path, recorded):
    """Each field of meta.json and of one event per kind, replaced by a string or a list: the
    run either reads and analyses, or is refused by read_run."""
    from leaklab.analysis import recycling

    meta = json.loads((recorded / "meta.json").read_text())
    events = [json.loads(line) for line in (recorded / "events.jsonl").read_text().splitlines()]
    first_of_kind = {}
    for i, event in enumerate(events):
        first_of_kind.setdefault(event["kind"], i)
    cases = [("meta", path, r) for path, r in _mutations(meta) if path[0] != "schema_version"]
    cases += [(i, path, r) for i in first_of_kind.values() for path, r in _mutations(events[i])]
    assert len(cases) > 150
    run = _copy(recorded, tmp_path / "run")
    refused = 0
    for where, path, replacement in cases:
        if where == "meta":
            (run / "meta.json").write_text(json.dumps(_set(meta, path, replacement)))
            (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        else:
            (run / "meta.json").write_text(json.dumps(meta))
            spoilt = [_set(e, path, replacement) if i == where else e for i, e in enumerate(events)]
            (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in spoilt))
        try:
            data = store.read_run(run, warn=False)
        except store.RunFormatError:
            refused += 1
            continue
        try:
            analyze(data)
            recycling.predict_from_run(data, 150 * 10**6, 30.0, None, "restart", "SIGINT", 1.6)
        except ValueError as exc:  # the documented "cannot plan from this run" (exit 2)
            assert "growth" in str(exc) or "limit" in str(exc) or "run" in str(exc), (
                where,
                path,
                replacement,
            )
        except Exception as exc:  # pragma: no cover - the failure this test is for
            pytest.fail(f"{where} {path} = {replacement!r}: {type(exc).__name__}: {exc}")
    assert refused > 50


# -- 7: terminal escapes from the child --------------------------------------------------------


def test_escapes_in_child_provided_names_never_reach_the_terminal(tmp_path):
    out = tmp_path / "runs"
    # By steps, with a fixed snapshot cadence: the same snapshots (and so the same "grows" and
    # "held by" lines) on a busy machine as on an idle one.
    done = _cli(
        "run",
        MISBEHAVES,
        "-v",
        "terminal",
        "--steps",
        "8000",
        "--rate",
        "2000/s",
        "--interval",
        "0.1s",
        "--snapshot-every",
        "1000",
        "--warmup",
        "1000",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    analysed = _cli("analyze", "--runs", str(out))
    for text in (done.stdout, analysed.stdout):
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b]0;pwned\\x07Evil\\x1b[2J\\x1b[31m" in text  # shown, as escapes
    assert "held by   misbehaves._KEPT -> list -> \\x1b]0;pwned" in done.stdout
    failed = _cli(
        "run", MISBEHAVES, "-v", "terminal", "-p", "fail_at=5", "--steps", "50", "--out", str(out)
    )
    assert failed.returncode == 1
    assert "\x1b" not in failed.stdout and "exploded \\x1b]0;pwned\\x07" in failed.stdout


# -- 8: the smaller cases ------------------------------------------------------------------------


def test_caps_and_durations_that_cannot_work_are_usage_errors(tmp_path, recorded):
    out = str(tmp_path / "runs")
    _usage_error(
        _cli("run", RETAIN, "--max-rss", "0", "--out", out),
        "--max-rss 0 B is below",
        "smallest cap",
    )
    _usage_error(_cli("run", RETAIN, "--max-rss", "1B", "--out", out), "--max-rss 1 B is below")
    _usage_error(
        _cli("run", RETAIN, "--duration", "0s", "--out", out), "--duration must be positive"
    )
    _usage_error(_cli("plan", str(recorded), "--limit", "1B"), "not above a fresh process's memory")
    assert not Path(out).exists()


def test_messages_keep_their_quotes_and_single_full_stops(tmp_path, recorded):
    missing = _cli("run", "scenarios/nope.py")
    _usage_error(missing, "no scenario file at 'scenarios/nope.py'")
    newer = _copy(recorded, tmp_path / "newer")
    _rewrite_meta(newer, lambda m: {**m, "schema_version": 99})
    done = _cli("analyze", str(newer))
    _usage_error(done, "this leaklab reads up to 1: upgrade leaklab")
    assert ".." not in done.stderr


def test_sigterm_to_the_gate_ends_its_runs_interrupted(tmp_path):
    config = tmp_path / "pyproject.toml"
    config.write_text(
        f'[tool.leaklab.gate]\nout = "gate"\n[[tool.leaklab.gate.checks]]\nscenario = "{RETAIN}"\n'
        'duration = "60s"\nrate = "100/s"\nmax_per_step = "16B"\n',
        encoding="utf-8",
    )
    gate = subprocess.Popen(
        [sys.executable, "-m", "leaklab", "gate", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / "gate"
    wait_for_samples(runs, gate, 2)  # the child is stepping
    gate.send_signal(signal.SIGTERM)
    _out, err = gate.communicate(timeout=60)
    assert gate.returncode == 130, err
    (run,) = [p for p in runs.iterdir() if store.is_run_dir(p)]
    assert store.read_meta(run)["status"] == "interrupted"
