"""CSV: a time column and a memory column (plus, optionally, a count, a pid, a process start
time and a series column).

Columns are named by header or by position (1 is the first column). Times are epoch
seconds (milliseconds when the numbers are too large to be seconds) or ISO-8601 text;
memory is a number in ``unit`` (bytes by default) or text with its unit (``153 MiB``,
``1.5GB``), parsed by :mod:`leaklab.units`. A ``count`` column (requests served so far)
becomes the run's steps; a ``pid`` or ``started`` column (the process' start time, epoch
seconds or ISO-8601, as Prometheus' ``process_start_time_seconds``) names the process of
each row; a ``series`` column splits a fleet into one run per value.

The file is read in chunks (:func:`pandas.read_csv` with ``chunksize``), so its size is
not bounded by memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leaklab import units
from leaklab.importers.series import ImportFailed, RunSink

CHUNK_ROWS = 1_000_000
#: Epoch numbers above this are milliseconds (as seconds they would be after the year 5000).
MS_ABOVE = 1e11


@dataclass(frozen=True)
class CsvColumns:
    """Which columns hold what: a header name or a 1-based position; None for absent."""

    time: str | None = None  # default: the first column
    memory: str | None = None  # default: the first numeric column not otherwise used
    count: str | None = None
    pid: str | None = None
    started: str | None = None  # the process' start time
    series: str | None = None
    unit: str = "B"  # what a bare number in the memory column means


def _resolve(spec: str | None, header: list[str], flag: str) -> str | None:
    if spec is None:
        return None
    if spec in header:
        return spec
    if spec.isdigit() and 1 <= int(spec) <= len(header):
        return header[int(spec) - 1]
    raise ImportFailed(
        f"{flag} {spec}: no such column; the columns are {', '.join(header)} "
        f"(or a position from 1 to {len(header)})"
    )


def _memory_values(column: pd.Series, scale: float, name: str) -> np.ndarray:
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all() or column.isna().all():
        return numbers.to_numpy(dtype=float) * scale
    values = numbers.to_numpy(dtype=float) * scale
    for i in np.flatnonzero(numbers.isna() & column.notna()):
        text = str(column.iloc[i])
        try:
            values[i] = units.parse_size(text)
        except units.UnitError:
            raise ImportFailed(
                f"memory column {name!r}: {text!r} (row {column.index[i] + 2}) is not a size; "
                f"accepted: numbers in --unit, or {units.SIZE_FORMS}"
            ) from None
    return values


def _times(column: pd.Series, name: str) -> np.ndarray:
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        values = numbers.to_numpy(dtype=float)
        return values / 1000.0 if len(values) and np.nanmax(values) > MS_ABOVE else values
    try:
        stamps = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        bad = column[numbers.isna()].iloc[0]
        raise ImportFailed(
            f"time column {name!r}: {bad!r} is neither epoch seconds nor an ISO-8601 time "
            "(2026-12-01T10:00:00Z); pick the time column with --time"
        ) from None
    return stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9


def _instants(column: pd.Series) -> np.ndarray:
    """Epoch seconds of a column of start times (numbers or ISO-8601 text; NaN where neither)."""
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().any():
        values = numbers.to_numpy(dtype=float)
        return values / 1000.0 if np.nanmax(values) > MS_ABOVE else values
    stamps = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
    seconds = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    return np.where(stamps.isna().to_numpy(), np.nan, seconds)


def _chunks(path: Path) -> Iterator[pd.DataFrame]:
    try:
        yield from pd.read_csv(path, chunksize=CHUNK_ROWS, skipinitialspace=True)
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{path}: not a readable CSV file ({exc})") from None


def _choose(header: list[str], first: pd.DataFrame, cols: CsvColumns) -> dict[str, str | None]:
    chosen = {
        "time": _resolve(cols.time, header, "--time") or header[0],
        "count": _resolve(cols.count, header, "--count"),
        "pid": _resolve(cols.pid, header, "--pid"),
        "started": _resolve(cols.started, header, "--start-time"),
        "series": _resolve(cols.series, header, "--series"),
    }
    memory = _resolve(cols.memory, header, "--memory")
    if memory is None:
        used = set(chosen.values())
        candidates = [c for c in header if c not in used]
        numeric = [c for c in candidates if pd.to_numeric(first[c], errors="coerce").notna().any()]
        if not numeric:
            raise ImportFailed(
                f"no numeric column to read memory from (columns: {', '.join(header)}); "
                "name it with --memory COLUMN"
            )
        memory = numeric[0]
    chosen["memory"] = memory
    return chosen


def import_csv(path: str | Path, sink: RunSink, cols: CsvColumns) -> None:
    """Feed every row of the CSV file at ``path`` to ``sink``."""
    path = Path(path)
    try:
        scale = float(units.parse_size(f"1{cols.unit}" if cols.unit[:1].isalpha() else cols.unit))
    except units.UnitError as exc:
        raise ImportFailed(f"--unit {cols.unit}: {exc}") from None
    chosen: dict[str, str | None] | None = None
    for frame in _chunks(path):
        header = [str(c) for c in frame.columns]
        frame.columns = header
        if chosen is None:
            if len(header) < 2:
                raise ImportFailed(
                    f"{path}: needs a time column and a memory column; found {header}"
                )
            chosen = _choose(header, frame, cols)
        frame = frame.dropna(subset=[chosen["time"]])
        ts = _times(frame[chosen["time"]], str(chosen["time"]))
        values = _memory_values(frame[str(chosen["memory"])], scale, str(chosen["memory"]))
        counts = (
            pd.to_numeric(frame[chosen["count"]], errors="coerce").to_numpy(dtype=float)
            if chosen["count"]
            else None
        )
        pids = (
            pd.to_numeric(frame[chosen["pid"]], errors="coerce").to_numpy(dtype=float)
            if chosen["pid"]
            else None
        )
        started = _instants(frame[chosen["started"]]) if chosen["started"] else None
        if chosen["series"] is None:
            sink.add("", {}, ts, values, counts, pids, started)
            continue
        keys = frame[chosen["series"]].astype(str).to_numpy()
        for key, rows in pd.Series(keys).groupby(keys, sort=False).indices.items():
            sink.add(
                str(key),
                {str(chosen["series"]): str(key)},
                ts[rows],
                values[rows],
                None if counts is None else counts[rows],
                None if pids is None else pids[rows],
                None if started is None else started[rows],
            )
    if chosen is None:
        raise ImportFailed(f"{path}: the file is empty")
    sink.source["columns"] = chosen
