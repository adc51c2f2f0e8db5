"""The run directory: the one seam between recording and everything that reads a run.

::

    runs/<UTC timestamp>-<scenario>-<variant>/
      meta.json      what ran, how, where, and how it ended (rewritten atomically)
      samples.csv    one row per sample, appended and flushed row by row
      events.jsonl   everything that is not a sample, appended and flushed
      artifacts/     files that probes and reporters leave (captures, graphs, tracebacks)

Plain text only (JSON, CSV): a run from someone else can be read without running
any of its code. Readers tolerate a run that is still being written and a
truncated last line (warned about, the rest kept). ``docs/run-format.md`` is the
reference for every field.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from leaklab.kinds import Status
from leaklab.records import (
    SCHEMA_VERSION,
    Column,
    Meta,
    RunFormatError,
    RunSettings,
    check_event,
    type_name,
)

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "Meta",
    "RunFormatError",
    "RunSettings",
    "check_event",
    "check_meta",
]

META = "meta.json"
SAMPLES = "samples.csv"
EVENTS = "events.jsonl"
REQUESTS = "requests.csv"
PROCESSES = "processes.csv"
ARTIFACTS = "artifacts"

#: Columns every run has, in this order; probes may add more after them.
BASE_COLUMNS: tuple[str, ...] = tuple(c.value for c in Column)


#: Columns of ``requests.csv`` (service mode: one row per request the load generator sent).
REQUEST_COLUMNS = (
    "t",  # seconds since the run started when the request was sent
    "generation",  # the process generation it was sent to
    "latency_s",  # until the response was read or the request failed
    "status",  # HTTP status (empty when no response came back)
    "error",  # empty, or why no response came back: refused, reset, disconnected, timeout, ...
)
#: Columns of ``processes.csv`` (runs of a command or a watched process: the memory of
#: every process of the tree at each sample, from outside).
PROCESS_COLUMNS = (
    "t",  # seconds since the run started
    "generation",  # the process generation whose tree it belongs to
    "pid",
    "ppid",
    "name",  # the process name as the system reports it
    "rss",  # bytes
    "uss",  # bytes, where the platform gives it
)
#: ``requests.csv`` columns that hold text rather than numbers.
_TEXT_COLUMNS = frozenset({"error"})


class RunDirError(Exception):
    """A run directory cannot be created where it was asked for (a folder that cannot be
    written)."""


class MalformedRunWarning(UserWarning):
    """A run skipped by a reader of many runs because its files are malformed."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slug(text: str) -> str:
    """``text`` made safe for a file or directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def new_run_dir(
    root: str | os.PathLike[str], scenario: str, variant: str | None, when: datetime | None = None
) -> Path:
    """Create and return ``root/<UTC timestamp>-<scenario>[-<variant>]`` (unique)."""
    when = when or utc_now()
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{slug(scenario)}" + (f"-{slug(variant)}" if variant else "")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            candidate = root / (base if n == 0 else f"{base}.{n}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            (candidate / ARTIFACTS).mkdir()
            return candidate
    except OSError as exc:
        raise RunDirError(
            f"cannot create a run directory under {root}: {exc.strerror or exc}"
        ) from None
    raise RunDirError(f"cannot create a unique run directory under {root}")


def write_json_atomic(path: Path, data: Any, sync: bool = True) -> None:
    """Write JSON so a reader never sees half a file, even if the writer dies mid-way
    (``sync=False`` skips the fsync: for files that are not in place yet, such as a staged
    import that is moved into place only once complete)."""
    fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False, default=_json_default)
            fh.write("\n")
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    # Probes may hand over numpy scalars; anything else is shown, never pickled.
    if hasattr(value, "item"):
        return value.item()
    return repr(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _column_cells(values: Any, n: int) -> list[str]:
    """The cells of one column of :meth:`RunWriter.samples` (``n`` rows), as :func:`_cell`
    writes each value: integers as integers, floats by ``repr``, NaN, None and masked as empty."""
    import numpy as np

    if values is None:
        return [""] * n
    data = np.asarray(np.ma.getdata(values))
    blank = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else np.zeros(n, bool)
    if data.dtype.kind == "f":
        blank = blank | np.isnan(data)
    if blank.all():
        return [""] * n
    text = list(map(repr if data.dtype.kind == "f" else str, data.tolist()))
    for row in np.flatnonzero(blank).tolist():
        text[row] = ""
    return text


class _LazyTable:
    """A CSV file of the run created on its first row, flushed after every row."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self.written = 0
        self._fh: Any = None
        self._csv: Any = None

    def append(self, row: Mapping[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._fh, lineterminator="\n")
            self._csv.writerow(self.columns)
        self._csv.writerow([_cell(row.get(c)) for c in self.columns])
        self._fh.flush()
        self.written += 1

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()


class RunWriter:
    """Appends to a run directory; every write is flushed before it returns."""

    def __init__(
        self,
        path: Path,
        meta: Mapping[str, Any] | Meta,
        columns: Iterable[str] = BASE_COLUMNS,
        sync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.sync = sync  # fsync meta.json on every rewrite (see write_json_atomic)
        fields = meta.to_dict() if isinstance(meta, Meta) else meta
        self.meta: dict[str, Any] = {"schema_version": SCHEMA_VERSION, **fields}
        self.meta.setdefault("status", Status.RUNNING)
        self.meta.setdefault("counters", {})
        self.columns = list(columns)
        self.samples_written = 0
        self.events_written = 0
        self.write_meta()
        self._samples = open(self.path / SAMPLES, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._samples, lineterminator="\n")
        self._csv.writerow(self.columns)
        self._samples.flush()
        self._events = open(self.path / EVENTS, "a", encoding="utf-8")
        self._requests = _LazyTable(self.path / REQUESTS, REQUEST_COLUMNS)
        self._processes = _LazyTable(self.path / PROCESSES, PROCESS_COLUMNS)

    @property
    def artifacts(self) -> Path:
        return self.path / ARTIFACTS

    def write_meta(self) -> None:
        write_json_atomic(self.path / META, self.meta, self.sync)

    def update_meta(self, **fields: Any) -> None:
        self.meta.update(fields)
        self.write_meta()

    def sample(self, row: Mapping[str, Any]) -> None:
        self._reopen_samples()
        self._csv.writerow([_cell(row.get(c)) for c in self.columns])
        self._samples.flush()
        self.samples_written += 1

    def samples(self, columns: Mapping[str, Any]) -> None:
        """Append many rows at once, given as columns of equal length (``columns`` order; a
        missing one is empty), flushed once at the end: for importers, which write series
        recorded elsewhere. Numbers are written as :meth:`sample` writes them (an integer array
        as integers, floats as ``repr`` gives them); NaN, None and masked values as empty."""
        present = [v for v in columns.values() if v is not None]
        n = len(present[0]) if present else 0
        cells = [_column_cells(columns.get(c), n) for c in self.columns]
        self._reopen_samples()
        if n:
            self._samples.write("\n".join(map(",".join, zip(*cells, strict=True))) + "\n")
        self._samples.flush()
        self.samples_written += n

    def release(self) -> None:
        """Close the open files until the next write, which reopens them for appending (an
        importer writing a thousand runs a chunk at a time keeps no file open in between)."""
        for fh in (self._samples, self._events):
            if not fh.closed:
                fh.close()

    def _reopen_samples(self) -> None:
        if self._samples.closed:
            self._samples = open(self.path / SAMPLES, "a", encoding="utf-8", newline="")
            self._csv = csv.writer(self._samples, lineterminator="\n")

    def _reopen_events(self) -> None:
        if self._events.closed:
            self._events = open(self.path / EVENTS, "a", encoding="utf-8")

    def event(self, kind: str, t: float | None = None, **fields: Any) -> None:
        self._reopen_events()
        record = {"t": None if t is None else round(t, 6), "kind": kind, **fields}
        self._events.write(json.dumps(record, default=_json_default) + "\n")
        self._events.flush()
        self.events_written += 1

    @property
    def requests_written(self) -> int:
        return self._requests.written

    def request(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``requests.csv`` (created on first use). Only one thread may call
        this."""
        self._requests.append(row)

    def process(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``processes.csv`` (created on first use)."""
        self._processes.append(row)

    def close(self) -> None:
        self._requests.close()
        self._processes.close()
        for fh in (self._samples, self._events):
            if fh is not None and not fh.closed:
                fh.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RunData:
    """A run as read from disk: plain Python data, no pandas, no numpy."""

    path: Path
    meta: dict[str, Any]
    columns: dict[str, list[float]]
    events: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    #: ``requests.csv`` columns (service mode only; empty otherwise): numbers as floats, ``error``
    #: as text
    requests: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "unknown"))

    @functools.cached_property
    def record(self) -> Meta:
        """``meta.json`` as a typed record (checked when the run was read)."""
        return Meta.from_dict(self.meta, str(self.path / META))

    @property
    def config(self) -> RunSettings:
        """How the run was asked to run (empty when it recorded nothing)."""
        return self.record.settings

    @property
    def n_samples(self) -> int:
        return len(self.columns.get("t", []))

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("kind") == kind]


def check_meta(meta: Any, where: str = META) -> Meta:
    """The typed ``meta.json``; RunFormatError when it is not an object of the documented shape."""
    if not isinstance(meta, dict):
        raise RunFormatError(f"{where} must hold a JSON object, not {type_name(meta)}")
    return Meta.from_dict(meta, where)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / META).is_file()


def _split_complete_lines(text: str, what: str, problems: list[str]) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] != "":
        problems.append(f"{what}: last line is truncated ({len(lines[-1])} characters); ignored")
    return [line for line in lines[:-1] if line.strip()]


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    meta_path = Path(path) / META
    if not meta_path.is_file():
        raise RunFormatError(f"{path} is not a run directory (no {META})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunFormatError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise RunFormatError(f"{meta_path} must hold a JSON object, not {type_name(meta)}")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise RunFormatError(
            f"{meta_path} has schema_version {version!r}; this leaklab reads up to "
            f"{SCHEMA_VERSION}: upgrade leaklab"
        )
    check_meta(meta, str(meta_path))
    return meta


def _read_table(
    path: Path, problems: list[str], text_columns: frozenset[str] = frozenset()
) -> dict[str, list[Any]] | None:
    """Columns of a CSV run file; numbers as floats (empty cells NaN), ``text_columns`` as str.
    None when the file is missing or has no complete header line."""
    if not path.is_file():
        return None
    content = path.read_text(encoding="utf-8", errors="replace")
    if not text_columns:
        fast = _read_clean_numbers(content, path.name, problems)
        if fast is not None:
            return fast
    lines = _split_complete_lines(content, path.name, problems)
    if not lines:
        return None
    if not text_columns:
        fast = _read_numbers(lines)
        if fast is not None:
            return fast
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader)
    text = [name in text_columns for name in header]
    data: list[list[Any]] = [[] for _ in header]
    nan = math.nan
    for lineno, row in enumerate(reader, start=2):
        if len(row) != len(header):
            problems.append(
                f"{path.name}:{lineno}: expected {len(header)} fields, got {len(row)}; row ignored"
            )
            continue
        try:
            values = [
                cell if is_text else (float(cell) if cell else nan)
                for cell, is_text in zip(row, text, strict=True)
            ]
        except ValueError:
            problems.append(f"{path.name}:{lineno}: non-numeric field; row ignored")
            continue
        for column, value in zip(data, values, strict=False):
            column.append(value)
    return dict(zip(header, data, strict=False))


#: What ``str.strip()`` takes for blank in ASCII, besides the newline: in an ASCII file without
#: these, the only lines the line-by-line reader skips as blank are empty ones.
_ASCII_BLANKS = " \t\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _read_clean_numbers(
    content: str, what: str, problems: list[str]
) -> dict[str, list[Any]] | None:
    """What :func:`_split_complete_lines` then :func:`_read_numbers` give, without splitting
    the file into lines in Python, for a file as leaklab writes it: ASCII, no blank line, the
    same number of commas on every line. None for any other file (read line by line)."""
    import numpy as np

    end = content.rfind("\n") + 1
    body = content[:end]
    if (
        not body
        or body[0] == "\n"
        or "\n\n" in body
        or not body.isascii()
        or any(blank in body for blank in _ASCII_BLANKS)
    ):
        return None
    header = body[: body.index("\n")]
    raw = np.frombuffer(body.encode("ascii"), dtype=np.uint8)
    counter = np.int32 if len(raw) < 2**31 else np.int64  # int32 sums several times faster
    commas_by_line_end = np.cumsum(raw == ord(","), dtype=counter)[raw == ord("\n")]
    if '"' in header or (np.diff(commas_by_line_end, prepend=0) != header.count(",")).any():
        return None  # a short or long row (pandas would pad it), or quoting
    columns = _parse_numbers(body, header)
    if columns is not None and end < len(content):
        problems.append(
            f"{what}: last line is truncated ({len(content) - end} characters); ignored"
        )
    return columns


def _read_numbers(lines: list[str]) -> dict[str, list[Any]] | None:
    """A table of numbers only, parsed by pandas' C reader (exactly as ``float()`` would:
    round-trip precision); None when any row is not clean, for the careful reader to
    tell which rows it drops and why."""
    commas = lines[0].count(",")
    if '"' in lines[0] or any(line.count(",") != commas for line in lines):
        return None  # a short or long row (pandas would pad it), or quoting
    return _parse_numbers("\n".join(lines), lines[0])


def _parse_numbers(text: str, header: str) -> dict[str, list[Any]] | None:
    """:func:`_read_numbers` of ``text`` (lines of as many fields as ``header``, its first)."""
    import pandas as pd

    # pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs asking.
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=float,
            keep_default_na=False,
            na_values=[""],
            engine="c",
            **exact,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if list(frame.columns) != next(csv.reader([header])):
        return None  # duplicate or odd names, which pandas would rename
    return {str(c): frame[c].tolist() for c in frame.columns}


def read_samples(
    path: str | os.PathLike[str], problems: list[str] | None = None
) -> dict[str, list[float]]:
    """Columns of ``samples.csv`` as lists of floats (missing cells are NaN)."""
    problems = problems if problems is not None else []
    samples_path = Path(path) / SAMPLES
    if not samples_path.is_file():
        problems.append(f"{SAMPLES} is missing")
    columns = _read_table(samples_path, problems)
    return columns if columns is not None else {c: [] for c in BASE_COLUMNS}


def read_requests(
    path: str | os.PathLike[str], problems: list[str] | None = None
) -> dict[str, list[Any]]:
    """Columns of ``requests.csv`` (``{}`` for a run without one): ``t``, ``generation``,
    ``latency_s`` and ``status`` as floats (NaN when empty), ``error`` as text."""
    problems = problems if problems is not None else []
    return _read_table(Path(path) / REQUESTS, problems, _TEXT_COLUMNS) or {}


def read_processes(
    path: str | os.PathLike[str], problems: list[str] | None = None
) -> dict[str, list[Any]]:
    """Columns of ``processes.csv`` (``{}`` for a run without one); ``name`` as text."""
    problems = problems if problems is not None else []
    return _read_table(Path(path) / PROCESSES, problems, frozenset({"name"})) or {}


def read_events(
    path: str | os.PathLike[str], problems: list[str] | None = None
) -> list[dict[str, Any]]:
    problems = problems if problems is not None else []
    events_path = Path(path) / EVENTS
    if not events_path.is_file():
        return []
    events: list[dict[str, Any]] = []
    lines = _split_complete_lines(
        events_path.read_text(encoding="utf-8", errors="replace"), EVENTS, problems
    )
    for lineno, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{EVENTS}:{lineno}: not JSON; line ignored")
            continue
        if not isinstance(record, dict):
            raise RunFormatError(
                f"{events_path}:{lineno}: an event must be a JSON object, not {type_name(record)}"
            )
        check_event(record, f"{events_path}:{lineno}")
        events.append(record)
    return events


def read_run(path: str | os.PathLike[str], warn: bool = True) -> RunData:
    """Load a run directory (complete, still running, or cut short)."""
    path = Path(path)
    meta = read_meta(path)
    problems: list[str] = []
    columns = read_samples(path, problems)
    events = read_events(path, problems)
    requests = read_requests(path, problems)
    if warn:
        for problem in problems:
            warnings.warn(f"{path.name}: {problem}", stacklevel=2)
    return RunData(
        path=path, meta=meta, columns=columns, events=events, warnings=problems, requests=requests
    )


def list_runs(root: str | os.PathLike[str] = "runs") -> list[Path]:
    """Run directories under ``root``, oldest first (by start time, then name). A run whose
    ``meta.json`` is malformed is left out with a :class:`MalformedRunWarning`."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    if not root.is_dir():
        return []
    started: dict[Path, tuple[str, str]] = {}
    for p in sorted(root.iterdir()):
        if not is_run_dir(p):
            continue
        try:
            started[p] = (str(read_meta(p).get("start") or ""), p.name)
        except RunFormatError as exc:
            warnings.warn(f"skipped {p}: {exc}", MalformedRunWarning, stacklevel=2)
    return sorted(started, key=started.__getitem__)


def well_formed(path: Path) -> bool:
    """Whether the run at ``path`` reads without a RunFormatError (else a MalformedRunWarning)."""
    try:
        read_run(path, warn=False)
    except RunFormatError as exc:
        warnings.warn(f"skipped {path}: {exc}", MalformedRunWarning, stacklevel=2)
        return False
    return True


def usage_hint(path: str | os.PathLike[str] | None, exc: RunFormatError) -> str:
    """The error for a RUN argument: what is wrong, and what RUN must be when it is not a run at
    all."""
    message = str(exc).rstrip(".")
    if path is not None and is_run_dir(path):
        return message
    return (
        f"{message}. RUN must be a run directory (with meta.json), e.g. runs/<timestamp>-<scenario>"
    )


def latest_run(root: str | os.PathLike[str] = "runs") -> Path:
    """The newest well-formed run under ``root``; newer malformed ones are skipped with a
    warning."""
    runs = list_runs(root)
    for path in reversed(runs):
        if well_formed(path):
            return path
    raise RunFormatError(
        f"no {'well-formed ' if runs else ''}runs under {root}; record one with `leaklab run "
        "SCENARIO`"
    )
