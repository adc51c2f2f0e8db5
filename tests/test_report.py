"""`leaklab report`: files, numbers that match the analysis, run selection, cut-short runs,
escaping.

The real runs are retain_bytes at 3,000 steps/s for 6,000 steps, sampled every 0.1 s. The
margins (1,024 to 1,400 B/step for the leaky variant; the fixed one under the 16 B/step leak
threshold) leave room for allocator noise on a loaded machine (docs/testing.md).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from leaklab import runner, store
from leaklab.analysis import analyze
from leaklab.cli import cli
from leaklab.report import build, plotdata, selection
from leaklab.runner.supervisor import RecyclePolicy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fake_run(
    root: Path,
    scenario: str = "demo",
    variant: str | None = "leaky",
    *,
    status: str = "completed",
    per_step: float = 1000.0,
    rows: int = 60,
    minute: int = 0,
    params: dict | None = None,
    argv: list[str] | None = None,
    scenario_path: str = "scenarios/demo.py",
) -> Path:
    """A small run written with the store's writer: ``per_step`` bytes of RSS per step, 100 steps
    per sample every 0.5 s, a deterministic wiggle so the interval is not zero."""
    when = T0 + timedelta(minutes=minute)
    path = store.new_run_dir(root, scenario, variant, when)
    meta = {
        "scenario": scenario,
        "variant": variant,
        "params": params or {"size": 1024},
        "scenario_path": scenario_path,
        "argv": argv or ["leaklab", "run", scenario],
        "start": store.iso(when),
        "config": {"interval_s": 0.5, "warmup": {"steps": 500}, "max_rss": 2**30},
    }
    with store.RunWriter(path, meta) as writer:
        writer.event("start", 0.0, pid=1)
        for i in range(rows):
            steps = i * 100
            rss = 30e6 + per_step * steps + 40_000 * ((i * 7) % 5)
            writer.sample(
                {
                    "t": i * 0.5,
                    "steps": steps,
                    "rss": rss,
                    "uss": rss - 8e6,
                    "allocated_blocks": 90_000 + steps * per_step / 500,
                    "generation": 0,
                    "pid": 1,
                }
            )
        writer.event("warmup_end", 2.5, steps=500)
        writer.update_meta(
            status=status,
            warmup_end={"t": 2.5, "steps": 500},
            duration_s=rows * 0.5,
            exit={"status": status, "message": "" if status == "completed" else f"ended: {status}"},
        )
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, request):
    """A leaky and a fixed retain_bytes run made by real child processes."""
    scenario = str(Path(request.config.rootpath) / "tests" / "scenarios" / "retain_bytes.py")
    root = tmp_path_factory.mktemp("runs")
    paths = {}
    for variant in ("leaky", "fixed"):
        result = runner.run(
            runner.RunConfig(
                scenario=scenario,
                variant=variant,
                steps=6_000,
                rate=3_000,
                interval_s=0.1,
                out=str(root),
                progress=False,
            )
        )
        assert result.status == "completed"
        paths[variant] = result.run_dir
    return paths


def test_before_after_report_of_real_runs(real_runs, tmp_path):
    out = tmp_path / "report"
    code, output = invoke(
        "--before", str(real_runs["leaky"]), "--after", str(real_runs["fixed"]), "--out", str(out)
    )
    assert code == 0, output
    assert str(out / "report.html") in output
    for name in (
        "report.md",
        "report.html",
        "summary.json",
        "before-after.png",
        "growth-rates.png",
        "memory-before.png",
        "memory-after.png",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "before_after"
    before, after = summary["runs"]
    # Every number comes from the analysis: the same call gives the same numbers.
    for entry, path in ((before, real_runs["leaky"]), (after, real_runs["fixed"])):
        expected = analyze(path).to_dict()
        assert entry["analysis"]["growth"] == expected["growth"]
        assert entry["analysis"]["verdict"] == expected["verdict"]
    assert before["analysis"]["verdict"] == "LEAK" and after["analysis"]["verdict"] == "NO_LEAK"
    assert 1_024 <= before["analysis"]["growth"]["rss"]["bytes_per_step"] <= 1_400
    assert abs(after["analysis"]["growth"]["rss"]["bytes_per_step"]) < 16
    md = (out / "report.md").read_text()
    assert "| Verdict | LEAK | NO\\_LEAK |" in md
    for chart in summary["charts"]:
        assert (out / chart).read_bytes().startswith(PNG_MAGIC)
        assert f"]({chart})" in md


def test_html_is_self_contained(real_runs, tmp_path):
    result = build.build(selection.pair(real_runs["leaky"], real_runs["fixed"]), tmp_path / "r")
    page = result.html.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(result.summary["charts"]) >= 4
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page.lower()


def test_report_of_one_run_goes_under_reports_by_default(real_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, output = invoke(str(real_runs["leaky"]))
    assert code == 0, output
    out = tmp_path / "reports" / real_runs["leaky"].name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "run" and summary["runs"][0]["role"] == "run"
    assert sorted(summary["charts"]) == ["growth-rates.png", "memory-run.png"]
    assert "growth" in summary["tables"] and "restart_behaviour" in summary["tables"]


def test_latest_run_or_latest_pair_of_its_scenario(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    fake_run(root, "alpha", "leaky", minute=1)  # older than the seed run: not chosen
    a_fixed = fake_run(root, "alpha", "fixed", minute=2, per_step=0)
    b_leaky = fake_run(root, "beta", "leaky", minute=3)
    assert selection.latest(root) == selection.Selection((b_leaky,), pair=False)
    a_seed = fake_run(root, "alpha", "seed", minute=4)
    assert selection.latest(root) == selection.Selection((a_seed, a_fixed), pair=True)
    fake_run(root, "alpha", "fixed-lru", minute=5, per_step=0)
    assert selection.latest(root).before == a_seed and selection.latest(root).after.name.endswith(
        "fixed-lru"
    )
    monkeypatch.chdir(tmp_path)
    code, output = invoke()
    assert code == 0, output
    assert (tmp_path / "reports" / "alpha-seed-vs-fixed-lru" / "report.html").is_file()
    code, output = invoke("--runs", str(tmp_path / "empty"))
    assert code == 2 and "no runs under" in output


@pytest.mark.parametrize(
    "status, words",
    [
        ("interrupted", "was interrupted"),
        ("failed", "the run failed"),
        ("killed_at_cap", "killed at the memory cap"),
        ("running", "still being written, or was cut short"),
    ],
)
def test_runs_that_did_not_complete_still_report_and_say_so_first(tmp_path, status, words):
    path = fake_run(tmp_path / "runs", status=status)
    result = build.build(selection.single(path), tmp_path / "r")
    notices = result.summary["notices"]
    assert notices and words in notices[0]
    page = result.html.read_text()
    assert page.index(words) < page.index("<h2>")
    md = result.markdown.read_text()
    assert md.index(words) < md.index("\n## ")
    assert (
        result.summary["runs"][0]["analysis"]["verdict"] == "LEAK"
    )  # the rows it has are analysed


def test_a_run_that_failed_before_any_sample_reports_without_empty_charts(tmp_path):
    path = fake_run(tmp_path / "runs", status="failed", rows=0)
    result = build.build(selection.single(path), tmp_path / "r")
    assert result.summary["charts"] == []
    assert "the run failed" in result.summary["notices"][0]
    assert "no growth could be measured" in result.markdown.read_text()


HOSTILE = "<script>alert(1)</script>"


class Tags(HTMLParser):
    """Every tag name, attribute name and image source in a page, as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attrs: set[str] = set()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.names.add(tag)
        self.attrs.update(name for name, _ in attrs)
        self.srcs += [value for name, value in attrs if name == "src"]


def test_text_from_a_run_is_escaped(tmp_path):
    path = fake_run(
        tmp_path / "runs",
        scenario=HOSTILE,
        variant="<img src=x onerror=alert(2)>",
        params={"<b>key</b>": "</td></tr></table><script>alert(3)</script>", "pipe": "a|b"},
        argv=["leaklab", "run", HOSTILE, "--param", "x=<iframe src=//evil>"],
        scenario_path=f"/tmp/{HOSTILE}.py",
    )
    fixed = fake_run(tmp_path / "runs", scenario=HOSTILE, variant="fixed", per_step=0, minute=1)
    result = build.build(selection.pair(path, fixed), tmp_path / "r")
    page = result.html.read_text()
    tags = Tags()
    tags.feed(page)
    # Only the report's own markup: no tag or event handler from the run survives as markup.
    assert tags.names <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "strong",
        "div",
        "table",
        "caption",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "figure",
        "img",
        "figcaption",
        "ul",
        "li",
        "pre",
    }
    assert not [a for a in tags.attrs if a.startswith("on")]
    assert all(src.startswith("data:image/png;base64,") for src in tags.srcs)
    for raw in ("<script", "<img src=x", "<iframe", "<b>key</b>"):
        assert raw not in page.lower(), raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page
    md = result.markdown.read_text()
    assert "<script" not in md.lower() and "<img" not in md.lower()
    # Every table row of the Markdown keeps its column count: a "|" from a run cannot add a cell.
    for block in md.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        counts = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(counts) <= 1, block


def test_a_profiled_run_shows_what_grows_and_a_class_named_script_stays_text(tmp_path, request):
    """named_leaks keeps a Widget, an Unprintable and an instance of a class named
    ``<script>alert(1)</script>`` per step; the profiler finds all three and their chains."""
    scenario = str(Path(request.config.rootpath) / "tests" / "scenarios" / "named_leaks.py")
    result = runner.run(
        runner.RunConfig(
            scenario=scenario,
            variant="leaky",
            steps=3_000,
            rate=1_000,
            interval_s=0.2,
            out=str(tmp_path / "runs"),
            progress=False,
            profile="default",
            probes=["tracemalloc", "gc-types", "retention"],
            # by steps: the same snapshots however busy the machine is
            probe_options={"snapshot_every": {"steps": 500, "seconds": None}},
        )
    )
    assert result.status == "completed"
    report = build.build(selection.single(result.run_dir), tmp_path / "r")
    types = [row[0] for row in report.summary["tables"]["top_types_run"]["rows"]]
    assert f"named_leaks.{HOSTILE}" in types and "named_leaks.Widget" in types
    assert "top-growth-run.png" in report.summary["charts"]
    page = report.html.read_text()
    tags = Tags()
    tags.feed(page)
    assert "script" not in tags.names
    assert "named_leaks.&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "named_leaks._CACHE  (module global)" in page  # the chain to Widget, as text
    md = report.markdown.read_text()
    outside_code = re.sub(r"(?ms)^(`{3,})text$.*?^\1$", "", md)
    assert "<script" not in outside_code.lower()
    assert "named\\_leaks.&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_a_recycled_run_shows_its_sawtooth_and_what_recycling_costs(real_runs, tmp_path, request):
    """retain_bytes leaky at 5,000 steps/s keeps ~5.5 MB/s (measured: 1,113 B/step); recycled at
    48 MB from a ~40 MB start (the default profile's probes loaded: the fixed run's baseline,
    which must stay under the limit), a process lives ~1.5 s, so a 6 s run restarts at least
    once."""
    scenario = str(Path(request.config.rootpath) / "tests" / "scenarios" / "retain_bytes.py")
    result = runner.run(
        runner.RunConfig(
            scenario=scenario,
            variant="leaky",
            duration_s=6,
            rate=5_000,
            interval_s=0.1,
            out=str(tmp_path / "runs"),
            progress=False,
            profile="rss",
            probes=[],
            recycle=RecyclePolicy(limit=48_000_000, check_interval_s=0.25),
        )
    )
    restarts = store.read_run(result.run_dir).events_of("restart")
    assert restarts, "the run never reached its limit"
    report = build.build(selection.pair(result.run_dir, real_runs["fixed"]), tmp_path / "r")
    assert "sawtooth-before.png" in report.summary["charts"]
    measured = report.summary["runs"][0]["recycling"]
    assert measured["memory_restarts"] == len([e for e in restarts if e["reason"] == "memory"])
    assert measured["limit"] == 48_000_000
    table = report.summary["tables"]["system_metrics"]
    assert table["headers"] == [
        "Metric",
        "before: leaky, measured",
        "before: leaky, predicted",
        "after: fixed, predicted",
    ]
    rows = {row[0]: row[1:] for row in table["rows"]}
    assert rows["Restarts in the run"][0].startswith(f"{measured['memory_restarts']} at the limit")
    assert rows["Restarts per hour"][2] == "0/h"  # the fixed run never reaches the limit
    # The restart behaviour table measures the fixed run against the same recycling limit.
    behaviour = report.summary["tables"]["restart_behaviour"]["rows"]
    assert behaviour[0][3] == behaviour[1][3] == "48 MB"
    assert behaviour[1][4] == "never"


def test_dollar_signs_in_names_are_text_not_math(tmp_path):
    """matplotlib reads $...$ as math and raises on a half-written formula like ``$_{$``."""
    before = fake_run(tmp_path / "runs", scenario="cost $_{$ demo", variant="$\\sqrt{$")
    after = fake_run(
        tmp_path / "runs", scenario="cost $_{$ demo", variant="fixed", per_step=0, minute=1
    )
    result = build.build(selection.pair(before, after), tmp_path / "r")
    assert len(result.summary["charts"]) == 4


def test_usage_errors_exit_2(tmp_path):
    run = fake_run(tmp_path / "runs")
    for args, words in [
        ((str(tmp_path / "missing"),), "not a run directory"),
        ((str(run), "--before", str(run), "--after", str(run)), "not both"),
        (("--before", str(run)), "go together"),
        ((str(run), "--limit", "lots"), "accepted forms"),
    ]:
        code, output = invoke(*args)
        assert code == 2, (args, output)
        assert words in output, (args, output)


def test_regenerating_removes_only_the_charts_it_no_longer_draws(tmp_path):
    before = fake_run(tmp_path / "runs", "demo", "leaky", minute=1)
    after = fake_run(tmp_path / "runs", "demo", "fixed", minute=2, per_step=0)
    out = tmp_path / "r"
    build.build(selection.pair(before, after), out)
    (out / "notes.png").write_bytes(PNG_MAGIC)  # the user's own file
    assert (out / "before-after.png").is_file()
    build.build(selection.single(before), out)
    assert not (out / "before-after.png").exists() and not (out / "memory-before.png").exists()
    assert (out / "memory-run.png").is_file() and (out / "notes.png").is_file()


def test_limit_sets_time_to_limit(tmp_path):
    path = fake_run(tmp_path / "runs", per_step=1000.0)
    result = build.build(selection.single(path), tmp_path / "r", limit=150_000_000)
    entry = result.summary["runs"][0]
    growth = entry["analysis"]["growth"]["rss"]
    assert entry["limit"] == {"bytes": 150e6, "source": "--limit"}
    # time to limit = (limit - baseline) / rate, from the analysis's own numbers
    assert entry["time_to_limit_s"] == pytest.approx(
        (150e6 - growth["baseline"]) / growth["bytes_per_s"]
    )
    row = result.summary["tables"]["restart_behaviour"]["rows"][0]
    assert row[3] == "150 MB"


def test_envelope_keeps_every_peak_and_trough():
    t = np.arange(86_400, dtype=float)
    y = np.sin(t / 50.0) + (t % 997 == 0) * 10  # narrow spikes that striding would miss
    x2, y2 = plotdata.envelope(t, y, max_points=4000)
    assert len(x2) <= 4000
    assert np.all(np.diff(x2) > 0)
    assert y2.max() == y.max() and y2.min() == y.min()
    assert (y2 >= 10).sum() == (y >= 10).sum()


def test_a_drawn_line_breaks_between_processes():
    """Two process generations: the drawn points are each generation's own, joined by one
    NaN point, so matplotlib draws no line from the first process's peak to the next one's start."""
    t = np.arange(10, dtype=float)
    rss = np.array([50, 60, 70, 80, 150, 40, 50, 60, 70, 80], dtype=float)
    generation = np.array([0] * 5 + [1] * 5, dtype=float)
    x, y = plotdata.envelope_by_process(t, rss, generation)
    assert len(x) == 11 and np.isnan(x[5]) and np.isnan(y[5])
    assert list(y[:5]) == [50, 60, 70, 80, 150] and list(y[6:]) == [40, 50, 60, 70, 80]
    one_x, one_y = plotdata.envelope_by_process(t, rss, np.zeros(10))
    assert list(one_y) == list(rss) and np.isfinite(one_x).all()
