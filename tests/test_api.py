"""The notebook API: ``leaklab.load_run`` and ``leaklab.compare``."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest
import synthetic
from matplotlib.figure import Figure

import leaklab
from leaklab import store


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "leaky": synthetic.write_run(synthetic.case("retain-1KB"), root, seed=5),
        "fixed": synthetic.write_run(synthetic.case("no-retention"), root, seed=5),
    }


def test_load_run_gives_dataframes_and_analysis(runs) -> None:
    run = leaklab.load_run(runs["leaky"])
    assert run.meta["scenario"] == "synthetic-retain-1KB"
    assert isinstance(run.samples, pd.DataFrame) and run.samples.index.name == "t"
    assert {"steps", "rss", "uss", "allocated_blocks"} <= set(run.samples.columns)
    assert run.samples["steps"].isna().iloc[0]  # setup rows keep their empty steps
    assert set(run.events["kind"]) >= {"start", "ready", "warmup_end", "done"}
    growth = run.growth()
    assert list(growth.index) == ["rss", "uss", "blocks"]
    assert growth.loc["rss", "per_step"] == pytest.approx(1024, rel=0.05)
    assert growth.loc["rss", "verdict"] == "LEAK"
    assert run.verdict().label == "LEAK"
    assert run.growth(warmup="30s").loc["rss", "samples"] < growth.loc["rss", "samples"]
    assert "LEAK" in run.summary() and "LEAK" in repr(run)


def test_load_run_of_a_folder_takes_its_latest_run(runs) -> None:
    latest = store.latest_run(runs["leaky"].parent)
    assert leaklab.load_run(runs["leaky"].parent).path == latest


def test_load_run_rejects_what_is_not_a_run(tmp_path) -> None:
    with pytest.raises(store.RunFormatError, match="not a run directory"):
        leaklab.load_run(tmp_path / "missing")


def test_plot_is_a_figure_that_renders_headless(runs) -> None:
    fig = leaklab.load_run(runs["leaky"]).plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_repr_escapes_what_comes_from_the_run(tmp_path) -> None:
    case = synthetic.case("retain-1KB")
    meta, columns, events = synthetic.generate(case, 1)
    meta["scenario"] = "<script>alert('x')</script>"
    path = store.new_run_dir(tmp_path, "evil", None)
    with store.RunWriter(path, meta, list(columns)) as writer:
        for row in zip(*columns.values(), strict=True):
            writer.sample(dict(zip(columns, row, strict=True)))
    html = leaklab.load_run(path)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "LEAK" in html


def test_compare_before_and_after(runs) -> None:
    cmp = leaklab.compare(runs["leaky"], runs["fixed"])
    table = cmp.table
    assert table.loc["rss", "before"] == pytest.approx(1024, rel=0.05)
    assert abs(table.loc["rss", "after"]) < 20
    assert (
        table.loc["rss", "before_verdict"] == "LEAK"
        and table.loc["rss", "after_verdict"] == "NO_LEAK"
    )
    assert abs(table.loc["rss", "ratio"]) < 0.02
    assert cmp.verdicts == ("LEAK", "NO_LEAK")
    json.dumps(cmp.to_dict(), allow_nan=False)
    fig = cmp.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "&rarr;" in cmp._repr_html_()


def test_importing_leaklab_does_not_import_pandas() -> None:
    """`leaklab run` must not pay for pandas: only the notebook API imports it."""
    code = "import sys, leaklab, leaklab.cli, leaklab.commands.run; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
