"""``leaklab import`` from a real Prometheus server (the Debian package, started here on
127.0.0.1 with a temporary data directory) scraping real exporters every second: 20 Python
services exposing ``process_resident_memory_bytes`` with prometheus_client, 2 of them leaky.

The leaky services grow about 1 MB/s and the fixed ones not at all (docs/testing.md); the
assertions leave wide margins on both.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_support import JOB, Fleet, missing_reason, prometheus_binary

from leaklab import store
from leaklab.analysis import analyze
from leaklab.importers import RunSink
from leaklab.importers.prometheus import import_saved

LEAKLAB = [sys.executable, "-m", "leaklab"]
LEAKY = (7, 13)  # which of the 20 services leak: not the first by name, so ranking must find them
QUERY = f'process_resident_memory_bytes{{job="{JOB}"}}'

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason=missing_reason())


def _leaklab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LEAKLAB, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    variants = ["leaky" if i in LEAKY else "fixed" for i in range(20)]
    # Bounded: the exporters stop by themselves after 150 s; the fixture stops them sooner.
    with Fleet(variants, duration_s=150, leak_rate="1MB/s", scrape_s=1.0) as running:
        running.wait_for_points(18, timeout_s=90)
        yield running


@pytest.fixture(scope="module")
def prometheus() -> Fleet:
    """A real Prometheus scraping one real exporter, for the answers that need a server up but
    no run of scrapes (the fleet above waits ~25 s for its scrapes)."""
    with Fleet(["fixed"], duration_s=150, leak_rate="1MB/s", scrape_s=1.0) as running:
        yield running


def _window(fleet: Fleet) -> tuple[str, str]:
    end = time.time()
    return str(int(fleet.started)), str(int(end))


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if store.is_run_dir(p)) if out.is_dir() else []


@pytest.mark.slow  # a real Prometheus scraping 20 exporters for ~45 s: the soak job runs it
def test_fleet_of_20_ranks_the_two_leakers_first(fleet: Fleet, tmp_path: Path) -> None:
    start, end = _window(fleet)
    out = tmp_path / "fleet"
    result = _leaklab(
        "import",
        "--prometheus",
        fleet.url,
        "--query",
        QUERY,
        "--start",
        start,
        "--end",
        end,
        "--step",
        "1s",
        "--warmup",
        "3s",
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    runs = [Path(p) for p in json.loads(result.stdout)["runs"]]
    assert len(runs) == 20
    meta = store.read_meta(runs[0])
    assert meta["source"]["kind"] == "prometheus" and meta["source"]["query"] == QUERY
    assert meta["source"]["series"]["job"] == JOB and meta["config"]["interval_s"] == 1.0
    ranked = _leaklab("rank", str(out), "--json")
    assert ranked.returncode == 0, ranked.stderr
    rows = json.loads(ranked.stdout)["rows"]
    leaky = {f"svc-{i:02d}" for i in LEAKY}
    assert {r["labels"]["service"] for r in rows[:2]} == leaky
    for row in rows[:2]:
        assert row["verdict"] == "LEAK"
        # 1 MB/s kept: ~3,600 MB/h measured; a third of it is a wide margin on a busy machine.
        assert row["ci95_mb_per_hour"][0] > 1200
    for row in rows[2:]:
        assert row["verdict"] != "LEAK", row
        assert row["labels"]["variant"] == "fixed"
    report = _leaklab("report", "--fleet", str(out), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "2 LEAK" in report.stdout
    html = (tmp_path / "report" / "report.html").read_text()
    assert all(f"service={name}" in html for name in leaky)


@pytest.mark.slow  # shares the 20-exporter fleet (~25 s to scrape): the soak job runs it
def test_saved_answer_of_one_leaky_and_one_fixed_service(fleet: Fleet, tmp_path: Path) -> None:
    start, end = _window(fleet)
    for index, expected_leak in ((LEAKY[0], True), (0, False)):
        query = f'process_resident_memory_bytes{{job="{JOB}",service="svc-{index:02d}"}}'
        answer = requests.get(
            f"{fleet.url}/api/v1/query_range",
            params={"query": query, "start": start, "end": end, "step": "1"},
            timeout=10,
        )
        saved = tmp_path / f"answer-{index}.json"
        saved.write_text(answer.text)
        out = tmp_path / f"runs-{index}"
        result = _leaklab("import", str(saved), "--warmup", "3s", "--out", str(out))
        assert result.returncode == 0, result.stderr
        [run] = _runs(out)
        analysis = analyze(run)
        assert (analysis.label == "LEAK") is expected_leak, analysis.verdict
        if expected_leak:  # the README's path: import, then report on the run
            report = _leaklab("report", str(run), "--out", str(tmp_path / "report"), "--json")
            assert report.returncode == 0, report.stderr
            assert json.loads(report.stdout)["runs"][0]["analysis"]["verdict"] == "LEAK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "url, query, message",
    [
        ("down", QUERY, "cannot reach Prometheus"),
        ("up", "process_resident_memory_bytes{", "bad_data"),
        ("up", "no_such_metric_anywhere", "matched nothing"),
    ],
)
def test_bad_prometheus_input_exits_2_and_leaves_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, query: str, message: str
) -> None:
    # "down" needs no server at all: a free port on 127.0.0.1 refuses the connection.
    base = (
        request.getfixturevalue("prometheus").url
        if url == "up"
        else f"http://127.0.0.1:{_free_port()}"
    )
    out = tmp_path / "runs"
    out.mkdir()
    result = _leaklab(
        "import",
        "--prometheus",
        base,
        "--query",
        query,
        "--start",
        "1m",
        "--step",
        "1s",
        "--out",
        str(out),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_saved_error_answer_exits_2(tmp_path: Path) -> None:
    saved = tmp_path / "error.json"
    saved.write_text(
        json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 30"})
    )
    result = _leaklab("import", str(saved), "--out", str(tmp_path / "runs"))
    assert result.returncode == 2 and "bad_data: parse error at char 30" in result.stderr


def test_restart_labels_join_series_into_generations(tmp_path: Path) -> None:
    """Two processes of one pod, one after the other (a new pid label), are one run with two
    generations; a second pod stays a run of its own."""

    def values(t0: int, n: int, base: float) -> list[list[object]]:
        return [[t0 + i * 15, str(base + i * 1e5)] for i in range(n)]

    answer = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "rss", "pod": "a", "pid": "10"},
                    "values": values(1000, 40, 5e7),
                },
                {
                    "metric": {"__name__": "rss", "pod": "a", "pid": "11"},
                    "values": values(1000 + 40 * 15, 40, 5e7),
                },
                {
                    "metric": {"__name__": "rss", "pod": "b", "pid": "12"},
                    "values": values(1000, 80, 6e7),
                },
            ],
        },
    }
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer))
    with RunSink(tmp_path / "runs", {"kind": "prometheus", "from": str(saved)}, name="rss") as sink:
        import_saved(saved, sink)
        runs = sink.finish()
    by_pod = {store.read_meta(r)["source"]["series"]["pod"]: store.read_run(r) for r in runs}
    assert sorted(by_pod) == ["a", "b"]
    a = by_pod["a"]
    assert a.columns["pid"][39:41] == [10.0, 11.0] and a.columns["generation"][39:41] == [0.0, 1.0]
    assert [e["reason"] for e in a.events_of("series_restart")] == ["new pid"]
    assert set(by_pod["b"].columns["generation"]) == {0.0}


def test_process_start_time_in_the_answer_marks_restarts(tmp_path: Path) -> None:
    """An answer holding ``process_start_time_seconds`` beside the memory: the start time is no
    run of its own, a new value of it is a restart, and a fall of memory without one is not."""
    n = 240
    t = 1000 + np.arange(n) * 15
    # Memory falls back at samples 80 (a structure cleared) and 160 (a new process).
    rss = 5e7 + 2e5 * (np.arange(n) % 80)
    started = np.where(np.arange(n) < 160, 900.25, 1000 + 160 * 15 - 2.5)
    labels = {"instance": "app:8000", "job": "app"}
    answer = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": "process_resident_memory_bytes", **labels},
                    "values": [[int(a), str(b)] for a, b in zip(t, rss, strict=True)],
                },
                {
                    "metric": {"__name__": "process_start_time_seconds", **labels},
                    "values": [[int(a), str(b)] for a, b in zip(t, started, strict=True)],
                },
            ],
        },
    }
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer))
    with RunSink(tmp_path / "runs", {"kind": "prometheus", "from": str(saved)}, name="rss") as sink:
        import_saved(saved, sink)
        [run] = sink.finish()
    data = store.read_run(run)
    assert [(e["t"], e["reason"]) for e in data.events_of("series_restart")] == [
        (160 * 15.0, "new start time")
    ]
    assert data.columns["rss"][:2] == [5e7, 5e7 + 2e5]  # memory, not start times


@pytest.mark.slow  # a real Prometheus, a service restarted (~25 s): the soak job runs it
def test_a_real_restart_is_known_by_its_process_start_time(tmp_path: Path) -> None:
    """A prometheus_client service restarted on the same port, scraped every second: imported
    with ``process_start_time_seconds`` in the query, the restart is a new generation because the
    start time changed, and the leak within each process is a LEAK."""
    from prometheus_support import EXPORTER, start_prometheus

    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
        f"  - job_name: restart\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    server, url = start_prometheus(config, tmp_path / "data", tmp_path / "prometheus.log")
    try:
        began = time.time()
        for _ in range(2):  # one process, then another on the same port: a restart
            service = subprocess.Popen(
                [sys.executable, str(EXPORTER), "--leak-rate", "2MB/s", "--duration", "12"]
                + ["--port", str(port)],
                stdout=subprocess.DEVNULL,
            )
            service.wait(timeout=60)
        # Bounded: the services stopped by themselves; Prometheus holds what it scraped.
        result = _leaklab(
            "import",
            "--prometheus",
            url,
            "--query",
            '{__name__=~"process_resident_memory_bytes|process_start_time_seconds",job="restart"}',
            "--start",
            str(int(began)),
            "--end",
            str(int(time.time()) + 1),
            "--step",
            "1s",
            "--warmup",
            "2s",
            "--out",
            str(tmp_path / "runs"),
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    [run] = _runs(tmp_path / "runs")
    data = store.read_run(run)
    assert [e["reason"] for e in data.events_of("series_restart")] == ["new start time"]
    assert analyze(data).label == "LEAK"
