import json
import math

import pytest

from leaklab import store


def make_run(tmp_path, rows=5):
    path = store.new_run_dir(tmp_path, "demo", "leaky")
    with store.RunWriter(path, {"scenario": "demo", "variant": "leaky"}) as writer:
        for i in range(rows):
            writer.sample({"t": i * 0.5, "steps": i * 10, "rss": 1000 + i, "uss": None})
        writer.event("warmup_end", 1.0, steps=10)
        writer.update_meta(status="completed")
    return path


def test_round_trip(tmp_path):
    path = make_run(tmp_path)
    assert path.name.endswith("-demo-leaky")
    run = store.read_run(path)
    assert run.status == "completed"
    assert run.meta["schema_version"] == store.SCHEMA_VERSION
    assert run.columns["steps"] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert math.isnan(run.columns["uss"][0])
    assert run.events_of("warmup_end")[0]["steps"] == 10
    assert run.warnings == []


def test_truncated_last_lines_are_dropped_with_a_warning(tmp_path):
    path = make_run(tmp_path)
    with open(path / store.SAMPLES, "a") as fh:
        fh.write("2.5,50,10")  # a crash mid-row: no newline
    with open(path / store.EVENTS, "a") as fh:
        fh.write('{"t": 3, "kind": "sna')
    with pytest.warns(UserWarning, match="truncated"):
        run = store.read_run(path)
    assert run.n_samples == 5
    assert len(run.events) == 1
    assert len(run.warnings) == 2


def test_reads_a_run_that_is_still_being_written(tmp_path):
    path = store.new_run_dir(tmp_path, "live", None)
    writer = store.RunWriter(path, {"scenario": "live"})
    writer.sample({"t": 0.0, "steps": 0, "rss": 1})
    run = store.read_run(path)
    assert run.status == "running" and run.n_samples == 1
    writer.sample({"t": 0.5, "steps": 5, "rss": 2})
    assert store.read_run(path).n_samples == 2
    writer.close()


def test_unique_run_dirs(tmp_path):
    when = store.utc_now()
    first = store.new_run_dir(tmp_path, "x", "v", when)
    second = store.new_run_dir(tmp_path, "x", "v", when)
    assert first != second and second.name.endswith(".1")


def test_newer_schema_and_garbage_are_refused(tmp_path):
    path = make_run(tmp_path)
    meta = json.loads((path / store.META).read_text())
    meta["schema_version"] = store.SCHEMA_VERSION + 1
    (path / store.META).write_text(json.dumps(meta))
    with pytest.raises(store.RunFormatError, match="upgrade leaklab"):
        store.read_run(path)
    (path / store.META).write_text("{not json")
    with pytest.raises(store.RunFormatError, match="not valid JSON"):
        store.read_run(path)
    with pytest.raises(store.RunFormatError, match="not a run directory"):
        store.read_run(tmp_path)


def test_run_files_are_plain_text(tmp_path):
    path = make_run(tmp_path)
    for name in (store.META, store.SAMPLES, store.EVENTS):
        (path / name).read_text(encoding="utf-8")


def test_latest_run(tmp_path):
    with pytest.raises(store.RunFormatError, match="no runs"):
        store.latest_run(tmp_path)
    make_run(tmp_path)
    last = make_run(tmp_path)
    assert store.latest_run(tmp_path) == last


def test_samples_writes_columns_as_sample_writes_rows(tmp_path):
    import numpy as np

    path = store.new_run_dir(tmp_path, "imported", None)
    columns = ("t", "steps", "rss", "pid", "generation")
    with store.RunWriter(path, {"scenario": "imported"}, columns) as writer:
        writer.samples(
            {
                "t": np.array([0.0, 15.25, 1e16]),
                "steps": np.ma.masked_array(np.array([3, 0, 5]), mask=[False, True, False]),
                "rss": np.array([4096, -1, 2**60]),
                "pid": None,
                "generation": np.array([np.nan, 0.1, -0.0]),
            }
        )
    lines = (path / store.SAMPLES).read_text().splitlines()
    assert lines == [
        "t,steps,rss,pid,generation",
        "0.0,3,4096,,",
        "15.25,,-1,,0.1",
        f"1e+16,5,{2**60},,-0.0",
    ]


def test_odd_rows_are_dropped_with_a_warning_and_blank_lines_skipped(tmp_path):
    path = make_run(tmp_path, rows=3)
    width = len(store.BASE_COLUMNS)

    def row(*cells):
        return ",".join(list(cells) + [""] * (width - len(cells)))

    with open(path / store.SAMPLES, "a") as fh:
        fh.write(f"\n  \n2.0,20\n{row('2.5', '25', '1003')},,\n{row('3.0', 'x', '1004')}\n")
        fh.write(f"{row('3.5', '35', '1005')}\n")
    with pytest.warns(UserWarning) as caught:
        run = store.read_run(path)
    assert run.columns["t"] == [0.0, 0.5, 1.0, 3.5]
    assert run.columns["rss"] == [1000.0, 1001.0, 1002.0, 1005.0]
    # line numbers count the lines left once blank ones are skipped
    assert [str(w.message) for w in caught] == [
        f"{path.name}: samples.csv:5: expected {width} fields, got 2; row ignored",
        f"{path.name}: samples.csv:6: expected {width} fields, got {width + 2}; row ignored",
        f"{path.name}: samples.csv:7: non-numeric field; row ignored",
    ]
