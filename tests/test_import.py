"""``leaklab import`` of CSV and mprof files: run directories that analyze/report read as they
are, restarts as generations, and bad input refused with exit 2 and nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leaklab import store
from leaklab.analysis import analyze

LEAKLAB = [sys.executable, "-m", "leaklab"]
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z


def _leaklab(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEAKLAB, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if store.is_run_dir(p))


def _series(n: int = 480, slope_mb_h: float = 20.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two hours at 15 s: a base of 80 MB growing ``slope_mb_h`` with 0.1 MB of noise."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(n) * 15.0
    return t, 80e6 + slope_mb_h * 1e6 * (t - T0) / 3600 + rng.normal(0, 1e5, n)


def test_csv_with_units_iso_times_and_a_count_column(tmp_path: Path) -> None:
    t, rss = _series()
    iso = pd.to_datetime(t, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = pd.DataFrame(
        {
            "when": iso,
            "host": "web-1",
            "memory": [f"{v / 2**20:.3f} MiB" for v in rss],
            "served": np.arange(len(t)) * 300,
        }
    )
    frame.to_csv(tmp_path / "dash.csv", index=False)
    result = _leaklab(
        "import",
        str(tmp_path / "dash.csv"),
        "--time",
        "when",
        "--memory",
        "3",
        "--count",
        "served",
        "--out",
        str(tmp_path / "runs"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    [run] = [Path(p) for p in json.loads(result.stdout)["runs"]]
    meta = store.read_meta(run)
    assert meta["source"]["kind"] == "csv" and meta["source"]["columns"]["memory"] == "memory"
    assert meta["start"] == "2025-12-01T00:00:00.000Z" and meta["config"]["interval_s"] == 15.0
    data = store.read_run(run)
    assert data.columns["steps"][:3] == [0.0, 300.0, 600.0]
    assert abs(data.columns["rss"][0] - rss[0]) < 2**20 / 1000  # MiB with 3 decimals
    analysis = analyze(data)
    g = analysis.growth["rss"]
    # 20 MB/h at 300 requests per 15 s (20/s): 20e6 / 3600 / 20 = 278 B/request.
    assert 18 < g.mb_per_hour < 22 and 250 < g.bytes_per_step < 305
    assert analysis.label == "LEAK"
    # The README's path: import, then report on the run.
    report = _leaklab("report", str(run), "--out", str(tmp_path / "report"), "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["runs"][0]["analysis"]["verdict"] == "LEAK"


def test_csv_epoch_milliseconds_and_positions(tmp_path: Path) -> None:
    t, rss = _series(slope_mb_h=0.0)
    pd.DataFrame({"ms": (t * 1000).astype(np.int64), "rss_mb": rss / 1e6}).to_csv(
        tmp_path / "m.csv", index=False
    )
    result = _leaklab(
        "import",
        str(tmp_path / "m.csv"),
        "--time",
        "1",
        "--unit",
        "MB",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 0, result.stderr
    [run] = _runs(tmp_path / "o")
    data = store.read_run(run)
    assert data.columns["t"][1] == 15.0 and store.read_meta(run)["start"].startswith(
        "2025-12-01T00:00:00"
    )
    assert analyze(data).label != "LEAK"


def test_restarts_by_pid_and_by_drop_to_baseline_are_generations(tmp_path: Path) -> None:
    t, rss = _series(n=600, slope_mb_h=60.0)
    # Recycled every 200 samples: the pid changes, memory goes back to the start.
    since = np.arange(len(t)) % 200
    recycled = 80e6 + 60e6 * since * 15 / 3600 + (rss - 80e6 - 60e6 * (t - T0) / 3600)
    pids = 1000 + np.arange(len(t)) // 200
    pd.DataFrame({"t": t, "rss": recycled, "pid": pids}).to_csv(tmp_path / "p.csv", index=False)
    assert (
        _leaklab(
            "import", str(tmp_path / "p.csv"), "--pid", "pid", "--out", str(tmp_path / "a")
        ).returncode
        == 0
    )
    pd.DataFrame({"t": t, "rss": recycled}).to_csv(tmp_path / "d.csv", index=False)
    assert _leaklab("import", str(tmp_path / "d.csv"), "--out", str(tmp_path / "b")).returncode == 0
    for out, reason in ((tmp_path / "a", "new pid"), (tmp_path / "b", "drop to baseline")):
        [run] = _runs(out)
        data = store.read_run(run)
        assert sorted(set(data.columns["generation"])) == [0.0, 1.0, 2.0]
        assert data.columns["generation"][199] == 0.0 and data.columns["generation"][200] == 1.0
        restarts = data.events_of("series_restart")
        assert [e["reason"] for e in restarts] == [reason, reason] and restarts[0][
            "t"
        ] == 200 * 15.0
        assert data.meta["counters"]["generations"] == 3
        # Growth within each process: 60 MB/h, not the sawtooth's flat average.
        g = analyze(data).growth["rss"]
        assert 55 < g.mb_per_hour < 65 and g.generations == 3
    # With drop detection off, the same file is one generation.
    assert (
        _leaklab(
            "import", str(tmp_path / "d.csv"), "--restart-drop", "off", "--out", str(tmp_path / "c")
        ).returncode
        == 0
    )
    [run] = _runs(tmp_path / "c")
    assert set(store.read_run(run).columns["generation"]) == {0.0}


@pytest.mark.slow  # a fleet of series, ~15 s: the soak job runs it
def test_csv_fleet_one_run_per_series(tmp_path: Path) -> None:
    frames = []
    for k, slope in enumerate([0.0, 40.0, 0.0]):
        t, rss = _series(slope_mb_h=slope, seed=k)
        frames.append(pd.DataFrame({"time": t, "pod": f"pod-{k}", "rss": rss}))
    pd.concat(frames).sort_values("time", kind="stable").to_csv(tmp_path / "fleet.csv", index=False)
    result = _leaklab(
        "import", str(tmp_path / "fleet.csv"), "--series", "pod", "--out", str(tmp_path / "fleet")
    )
    assert result.returncode == 0, result.stderr
    runs = _runs(tmp_path / "fleet")
    assert sorted(store.read_meta(r)["variant"] for r in runs) == ["pod-0", "pod-1", "pod-2"]
    ranked = _leaklab("rank", str(tmp_path / "fleet"), "--json", "--jobs", "1")
    assert ranked.returncode == 0, ranked.stderr
    rows = json.loads(ranked.stdout)["rows"]
    assert [r["name"] for r in rows][0] == "pod-1" and rows[0]["verdict"] == "LEAK"
    lo, hi = rows[0]["ci95_mb_per_hour"]
    assert lo < 40 < hi or 36 < rows[0]["mb_per_hour"] < 44
    assert all(r["verdict"] != "LEAK" for r in rows[1:])
    import leaklab

    frame = leaklab.rank_fleet(tmp_path / "fleet", jobs=1)
    assert list(frame["name"]) == [r["name"] for r in rows] and frame.loc[1, "verdict"] == "LEAK"
    assert frame.loc[1, "ci95_lo_mb_per_hour"] == pytest.approx(rows[0]["ci95_mb_per_hour"][0])
    text = _leaklab("rank", str(tmp_path / "fleet"), "--jobs", "2")
    assert text.returncode == 0 and text.stdout.splitlines()[1].split()[1] == "LEAK"
    assert text.stdout.splitlines()[1].endswith("pod-1")
    report = _leaklab(
        "report", "--fleet", str(tmp_path / "fleet"), "--out", str(tmp_path / "rep"), "--json"
    )
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["verdicts"]["LEAK"] == 1 and summary["rows"][0]["name"] == "pod-1"
    assert {"fleet-top-curves.png", "fleet-rates.png"} <= {
        p.name for p in (tmp_path / "rep").iterdir()
    }
    assert "pod-1" in (tmp_path / "rep" / "report.html").read_text()


@pytest.mark.parametrize(
    "content, message",
    [
        ("time,host,state\n1,a,up\n2,a,down\n", "no numeric column"),
        ("t,rss\n10,100\n5,110\n", "unsorted timestamps"),
        ("t,rss\n10,100\n10,110\n", "duplicate timestamps"),
        ("t,rss\nmonday,100\ntuesday,110\n", "neither epoch seconds nor an ISO-8601"),
        ("", "not a readable CSV"),
    ],
)
def test_bad_csv_exits_2_and_leaves_nothing(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(content)
    out = tmp_path / "runs"
    out.mkdir()
    result = _leaklab("import", str(tmp_path / "bad.csv"), "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_unsorted_rows_of_a_later_series_remove_the_runs_already_written(tmp_path: Path) -> None:
    rows = "t,pod,rss\n" + "".join(f"{i},a,{100 + i}\n" for i in range(1, 50)) + "60,b,5\n55,b,6\n"
    (tmp_path / "f.csv").write_text(rows)
    (tmp_path / "runs").mkdir()
    keep = tmp_path / "runs" / "earlier-run"
    keep.mkdir()
    result = _leaklab(
        "import", str(tmp_path / "f.csv"), "--series", "pod", "--out", str(tmp_path / "runs")
    )
    assert result.returncode == 2 and "series b: unsorted timestamps" in result.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["earlier-run"]


MPROF_SCRIPT = textwrap.dedent("""
    import multiprocessing, time

    def child():
        kept = []
        for _ in range(15):
            kept.append(b"x" * 2_000_000)   # 2 MB a tick, written so it is resident
            time.sleep(0.1)

    if __name__ == "__main__":
        p = multiprocessing.get_context("spawn").Process(target=child)
        p.start()
        kept = []
        for _ in range(15):
            kept.append(b"y" * 1_000_000)
            time.sleep(0.1)
        p.join()
""")


def test_mprof_file_recorded_by_mprof_run_with_a_child(tmp_path: Path) -> None:
    script = tmp_path / "work.py"
    script.write_text(MPROF_SCRIPT)
    dat = tmp_path / "mprofile.dat"
    mprof = Path(sys.executable).with_name("mprof")
    recorded = subprocess.run(
        [
            str(mprof),
            "run",
            "-M",
            "--interval",
            "0.05",
            "--output",
            str(dat),
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert recorded.returncode == 0, recorded.stderr
    assert dat.read_text().count("CHLD ") > 5
    result = _leaklab("import", str(dat), "--out", str(tmp_path / "runs"), "--json")
    assert result.returncode == 0, result.stderr
    runs = [Path(p) for p in json.loads(result.stdout)["runs"]]
    variants = {store.read_meta(r)["variant"]: r for r in runs}
    assert "main" in variants and any(v.startswith("child-") for v in variants)
    main = store.read_run(variants["main"])
    assert main.meta["source"]["kind"] == "mprof" and "work.py" in main.meta["source"]["command"]
    rss = main.columns["rss"]
    # mprof records MiB; the run holds bytes: a running Python process is well over 5 MB (the
    # first sample may catch it at exec, before the interpreter loaded), and it kept 15 MB.
    assert float(np.median(rss)) > 5e6 and max(rss) - float(np.median(rss[:5])) > 5e6
    # Each child process is a run of its own (multiprocessing's spawn also starts a resource
    # tracker); the worker kept 30 MB.
    children = [store.read_run(r) for v, r in variants.items() if v.startswith("child-")]
    assert all(c.meta["source"]["series"]["process"] == "child" for c in children)
    assert max(max(c.columns["rss"]) - min(c.columns["rss"]) for c in children) > 20e6
    # The README's path: import, then report, on the imported run.
    report = _leaklab("report", str(variants["main"]), "--out", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "report.html").is_file()


def test_not_an_mprof_file(tmp_path: Path) -> None:
    (tmp_path / "x.dat").write_text("hello world\n\n")
    (tmp_path / "runs").mkdir()
    result = _leaklab("import", str(tmp_path / "x.dat"), "--out", str(tmp_path / "runs"))
    assert result.returncode == 2 and "mprof" in result.stderr and "Traceback" not in result.stderr
    assert list((tmp_path / "runs").iterdir()) == []


def test_drop_rule_ignores_one_sample_spikes_and_catches_slow_leaks_on_large_processes(
    tmp_path: Path,
) -> None:
    from leaklab.importers import RestartRule, RunSink

    rng = np.random.default_rng(3)
    n = 400
    t = T0 + np.arange(n) * 15.0
    # 400 MB with 0.3 MB of noise, a 4 MB buffer caught by single samples now and then.
    steady = 400e6 + rng.normal(0, 3e5, n)
    steady[::37] += 4e6
    # A 3 MB/h leak restarted after 200 samples: a 2.5 MB rise, 0.6% of the process.
    since = np.arange(n) % 200
    slow = 400e6 + 3e6 * since * 15 / 3600 + rng.normal(0, 2e4, n)
    with RunSink(
        tmp_path / "runs", {"kind": "csv", "from": "memory"}, name="rule", rule=RestartRule()
    ) as sink:
        sink.add("steady", {}, t, steady)
        sink.add("slow", {}, t[:150], slow[:150])  # in two chunks: the state carries over
        sink.add("slow", {}, t[150:], slow[150:])
        runs = {store.read_meta(p)["variant"]: store.read_run(p) for p in sink.finish()}
    assert set(runs["steady"].columns["generation"]) == {0.0}
    restarts = runs["slow"].events_of("series_restart")
    assert [e["t"] for e in restarts] == [200 * 15.0]


def test_a_fleet_of_more_series_than_open_files(tmp_path: Path) -> None:
    """300 series under a limit of 128 open files: no run keeps its files open between writes."""
    import resource

    t = np.repeat(T0 + np.arange(20) * 15.0, 300)
    pods = np.tile([f"pod-{k:03d}" for k in range(300)], 20)
    pd.DataFrame({"time": t, "pod": pods, "rss": 5e7}).to_csv(tmp_path / "wide.csv", index=False)

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    result = subprocess.run(
        [
            *LEAKLAB,
            "import",
            str(tmp_path / "wide.csv"),
            "--series",
            "pod",
            "--out",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_files,
    )
    assert result.returncode == 0, result.stderr
    assert len(_runs(tmp_path / "runs")) == 300


def _sawtooth(n: int = 1440, period: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """6 h at 15 s: 120 MB rising 40 MB/h and falling back to 120 MB every 20 minutes (80
    samples), with 0.1 MB of noise: a recycled leak or a structure cleared in a live process."""
    rng = np.random.default_rng(seed)
    since = np.arange(n) % period
    return T0 + np.arange(n) * 15.0, 120e6 + 40e6 * since * 15 / 3600 + rng.normal(0, 1e5, n)


@pytest.mark.parametrize(
    "evidence, generations, reason, label",
    [
        (None, 18, "drop to baseline", "INCONCLUSIVE"),  # memory alone cannot tell
        ("same start", 1, None, "NO_LEAK"),  # one process all along: the falls are clears
        ("new start", 18, "new start time", "LEAK"),  # a new process at every fall
        ("count goes on", 1, None, "NO_LEAK"),
        ("count resets", 18, "counter reset", "LEAK"),
    ],
)
def test_what_a_series_says_of_its_processes_decides_its_restarts(
    tmp_path: Path, evidence: str | None, generations: int, reason: str | None, label: str
) -> None:
    from leaklab.importers import RunSink

    t, rss = _sawtooth()
    process = np.arange(len(t)) // 80
    served = np.arange(len(t)) * 300.0  # 20 requests/s
    started = {
        "same start": np.full(len(t), T0 - 3600.5),
        "new start": T0 - 3600.5 + process * 1200.0,
    }.get(str(evidence))
    counts = {"count goes on": served, "count resets": served - process * 80 * 300.0}.get(
        str(evidence)
    )
    with RunSink(
        tmp_path / "runs",
        {"kind": "csv", "from": "memory"},
        name="saw",
        warmup_s=300,
        counts_steps=counts is not None,
    ) as sink:
        for part in (slice(0, 500), slice(500, None)):  # in two chunks: the state carries over
            sink.add(
                "",
                {},
                t[part],
                rss[part],
                counts=None if counts is None else counts[part],
                started=None if started is None else started[part],
            )
        [run] = sink.finish()
    data = store.read_run(run)
    assert data.meta["counters"]["generations"] == generations
    assert {e["reason"] for e in data.events_of("series_restart")} == (
        {reason} if reason else set()
    )
    verdict = analyze(data).verdict
    assert verdict.label == label, verdict
    if label == "INCONCLUSIVE":
        # Both readings and what would decide between them.
        text = " ".join(verdict.reasons)
        assert (
            "Read as restarts, LEAK" in text and "Read as memory freed in one live process" in text
        )
        assert "process_start_time_seconds" in text and verdict.more_time_s is None


def test_csv_start_time_column_as_iso_text(tmp_path: Path) -> None:
    t, rss = _sawtooth()
    process = np.arange(len(t)) // 80
    started = pd.to_datetime(T0 - 60 + process * 1200, unit="s", utc=True)
    pd.DataFrame({"t": t, "rss": rss, "started": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}).to_csv(
        tmp_path / "s.csv", index=False
    )
    result = _leaklab(
        "import",
        str(tmp_path / "s.csv"),
        "--start-time",
        "started",
        "--warmup",
        "5m",
        "--out",
        str(tmp_path / "runs"),
    )
    assert result.returncode == 0, result.stderr
    [run] = _runs(tmp_path / "runs")
    data = store.read_run(run)
    assert data.meta["source"]["columns"]["started"] == "started"
    assert data.meta["counters"]["generations"] == 18
    assert analyze(data).label == "LEAK"
