"""Typed records of the run directory: ``meta.json`` (its config, counters and marks) and the
fields of each event kind.

A record is a frozen dataclass. ``from_dict`` checks the value against the record's field
types first, so valid JSON of the wrong shape (a ``meta.json`` holding ``[1]``, a ``config``
that is a string, an event whose ``types`` is a list) is refused at one place, as a
:class:`RunFormatError` naming the file and the field; everything after may trust the types.
A field that is missing reads as its default; one that is present must have its type. Fields
that a record does not name are kept in ``extra`` and written back by ``to_dict``.

Event fields are checked by shape tables (``EVENT_SHAPES``), one per :class:`EventKind`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from leaklab.kinds import EventKind, TextEnum

SCHEMA_VERSION = 1


class RunFormatError(Exception):
    """A path that is not a readable run directory, or a run file of the wrong shape."""


# -- shapes ---------------------------------------------------------------------------------------
#
# A shape is: a type or tuple of types; ``None`` in a tuple allows null; a dict (an object
# whose named fields have those shapes); ``[shape]`` (a list of that shape); or
# ``{str: shape}`` (an object mapping any name to that shape). Records derive theirs from
# their field types.

NUM0 = (int, float, None)
STR0 = (str, None)
OBJ0 = (dict, None)
BOOL0 = (bool, None)


def type_name(value: Any) -> str:
    """How a JSON value's type reads in an error message."""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true/false",
        type(None): "null",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), type(value).__name__)


def _option_error(value: Any, options: tuple[Any, ...], where: str) -> str | None:
    for option in options:
        if option is None:
            if value is None:
                return None
        elif isinstance(option, (dict, list)):
            if isinstance(value, dict if isinstance(option, dict) else list):
                return shape_error(value, option, where)
        elif isinstance(value, option) and not (isinstance(value, bool) and option in (int, float)):
            return None
    wanted = dict.fromkeys(
        "null" if o is None else type_name(o() if isinstance(o, type) else o) for o in options
    )
    return f"{where} must be {' or '.join(wanted)}, not {type_name(value)}"


def shape_error(value: Any, shape: Any, where: str) -> str | None:
    """Why ``value`` does not have ``shape`` (None when it does)."""
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} must be a list, not {type_name(value)}"
        problems = (shape_error(item, shape[0], f"{where}[{i}]") for i, item in enumerate(value))
        return next((p for p in problems if p), None)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where} must be an object, not {type_name(value)}"
        if str in shape:
            problems = (shape_error(v, shape[str], f"{where}[{k!r}]") for k, v in value.items())
        else:
            problems = (
                shape_error(value[k], inner, f"{where}.{k}" if where else k)
                for k, inner in shape.items()
                if k in value
            )
        return next((p for p in problems if p), None)
    return _option_error(value, shape if isinstance(shape, tuple) else (shape,), where)


def _shape_of_type(hint: Any) -> Any:
    """The shape a field annotation allows."""
    if hint is Any:
        return object
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options: list[Any] = []
        for arg in args:
            inner = None if arg is type(None) else _shape_of_type(arg)
            options.extend(inner if isinstance(inner, tuple) else (inner,))
        return tuple(options)
    if origin is list:
        return [_shape_of_type(args[0])]
    if origin is dict:
        return {str: _shape_of_type(args[1])}
    if dataclasses.is_dataclass(hint):
        return shape_of(hint)
    if hint is float:
        return (int, float)
    return hint


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return {
        f.name: typing.get_type_hints(cls)[f.name]
        for f in dataclasses.fields(cls)
        if f.name != "extra"
    }


@functools.cache
def shape_of(cls: type) -> dict[str, Any]:
    """The shape of a record's dict form, derived from its field types."""
    return {name: _shape_of_type(hint) for name, hint in _hints(cls).items()}


R = TypeVar("R", bound="Record")


def _read_value(hint: Any, value: Any) -> Any:
    """A checked JSON value as the field's type holds it (nested records built)."""
    if value is None:
        return None
    for arg in typing.get_args(hint) or (hint,):
        if dataclasses.is_dataclass(arg) and isinstance(value, dict):
            return arg._build(value)
    return value


def _write_value(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Record) else value


@dataclass(frozen=True)
class Record:
    """Base of the typed records: checked on read, written back with what they do not name."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)
    #: Whether ``to_dict`` leaves out fields that are None (small records whose absent
    #: fields mean "not given", written as they were read).
    OMIT_NONE: ClassVar[bool] = False

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        """The record in ``data``; RunFormatError naming ``where`` and the field when a value
        has the wrong type."""
        problem = shape_error(data, shape_of(cls), "")
        if problem:
            raise RunFormatError(f"{where}: {problem}" if where else problem)
        return cls._build(data)

    @classmethod
    def _build(cls: type[R], data: Mapping[str, Any]) -> R:
        hints = _hints(cls)
        known = {k: _read_value(hints[k], v) for k, v in data.items() if k in hints}
        return cls(**known, extra={k: v for k, v in data.items() if k not in hints})

    def to_dict(self) -> dict[str, Any]:
        data = {
            f.name: _write_value(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "extra" and not (self.OMIT_NONE and getattr(self, f.name) is None)
        }
        return {**data, **self.extra}


# -- meta.json ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark(Record):
    """A point of a run: its time and how many steps were done by then."""

    OMIT_NONE = True

    t: float | None = None
    steps: float | None = None


@dataclass(frozen=True)
class WarmupSettings(Record):
    """The start of a run left out of the growth estimate."""

    OMIT_NONE = True

    steps: float | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class StopRuleSettings(Record):
    """How a run of no set length decided when to stop (analysis/sequential.py)."""

    OMIT_NONE = True

    kind: str | None = None
    alpha: float | None = None
    looks: float | None = None
    level: float | None = None
    first_look_s: float | None = None
    look_ratio: float | None = None
    skip_fraction: float | None = None


@dataclass(frozen=True)
class RecycleSettings(Record):
    """Restarting the process at a memory limit, as PM2's ``max_memory_restart`` does."""

    OMIT_NONE = True

    limit: float | None = None
    check_interval_s: float | None = None
    mode: str | None = None
    signal: str | None = None
    kill_signal: str | None = None
    kill_timeout_s: float | None = None
    by: str | None = None  # who recycled: leaklab's supervisor (None) or "pm2"


@dataclass(frozen=True)
class LoadSettings(Record):
    """The load sent to a service."""

    OMIT_NONE = True

    rate: float | None = None
    duration_s: float | None = None
    max_requests: float | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class RunSettings(Record):
    """How the run was asked to run (``meta.json`` ``config``)."""

    duration_s: float | None = None
    steps: float | None = None
    rate: float | None = None
    interval_s: float | None = None
    sample_interval_s: float | None = None
    until_confident: bool | None = None
    stop_rule: StopRuleSettings | None = None
    warmup: WarmupSettings | None = None
    max_rss: float | None = None
    grace_s: float | None = None
    include_children: bool | None = None
    profile: str | None = None
    probes: list[str] | None = None
    max_errors: float | None = None
    serve: bool | None = None
    health_path: str | None = None
    health: dict[str, Any] | None = None
    recycle: RecycleSettings | None = None
    load: LoadSettings | None = None
    steps_are: str | None = None
    counts_steps: bool | None = None


@dataclass(frozen=True)
class RequestCounts(Record):
    OMIT_NONE = True
    sent: float | None = None
    ok: float | None = None
    failed: float | None = None
    errors: dict[str, Any] | None = None


@dataclass(frozen=True)
class Counters(Record):
    """What the run did (``meta.json`` ``counters``)."""

    steps: float | None = None
    errors: float | None = None
    samples: float | None = None
    events: float | None = None
    rss_start: float | None = None
    rss_end: float | None = None
    rss_peak: float | None = None
    generations: float | None = None
    restarts: dict[str, float | None] | None = None
    requests: RequestCounts | None = None


@dataclass
class Look:
    """What one look of a stop rule at the data so far says: stop or not, and a line for the
    progress bar. The runner asks (``leaklab.runner.StopRule``), ``leaklab.analysis.sequential``
    answers; the window it names becomes the run's ``warmup_end`` and :class:`Decided`."""

    decided: bool
    text: str
    #: where the analysed window started ({"t": ..., "steps": ...}): recorded as the warm-up's end
    window_start: dict[str, Any] | None = None
    label: str = ""
    #: the analysed window's last row ({"t": ..., "steps": ...}): later analyses end there too
    window_end: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decided(Record):
    """The look that ended a run of no set length, and the window it judged."""

    OMIT_NONE = True

    label: str | None = None
    t: float | None = None
    looks: float | None = None
    window_end: Mark | None = None


@dataclass(frozen=True)
class ExitInfo(Record):
    """How the process under test ended."""

    OMIT_NONE = True

    status: str | None = None
    message: str | None = None
    returncode: float | None = None
    phase: str | None = None


@dataclass(frozen=True)
class ProbeOverhead(Record):
    OMIT_NONE = True
    loop_s: float | None = None
    probes: dict[str, dict[str, Any] | None] | None = None


@dataclass(frozen=True)
class Meta(Record):
    """``meta.json``: what ran, how, where, and how it ended."""

    schema_version: int = SCHEMA_VERSION
    scenario: str | None = None
    scenario_path: str | None = None
    description: str | None = None
    variant: str | None = None
    params: dict[str, Any] | None = None
    argv: list[str] | None = None
    versions: dict[str, Any] | None = None
    host: dict[str, Any] | None = None
    start: str | None = None
    end: str | None = None
    status: str = "running"
    duration_s: float | None = None
    config: RunSettings | None = None
    counters: Counters | None = None
    warmup_end: Mark | None = None
    decided: Decided | None = None
    exit: ExitInfo | None = None
    probe_overhead: ProbeOverhead | None = None
    source: dict[str, Any] | str | None = (
        None  # what recorded it: "command", "watch", "pm2", or an import's origin
    )
    command: list[str] | None = None  # the command a command run started

    @property
    def settings(self) -> RunSettings:
        """The config, empty when the run recorded none."""
        return self.config or RunSettings()


def settings_of(meta: Mapping[str, Any]) -> RunSettings:
    """The config of a ``meta.json`` dict (empty when it has none)."""
    config = meta.get("config")
    return (
        RunSettings.from_dict(config, "meta.json config")
        if isinstance(config, dict)
        else RunSettings()
    )


# -- samples.csv ----------------------------------------------------------------------------------


class Column(TextEnum):
    """The columns every ``samples.csv`` has, in this order; probes may add more after them."""

    T = "t"  # seconds since the run started (monotonic clock)
    STEPS = "steps"  # cumulative steps completed, summed over process generations
    RSS = "rss"  # resident set size, bytes, from outside (psutil)
    USS = "uss"  # unique set size, bytes, where the platform gives it
    CHILD_RSS = "child_rss"  # resident set size the child read of itself at the step boundary
    ALLOCATED_BLOCKS = "allocated_blocks"  # sys.getallocatedblocks() in the child
    # allocated blocks right after the latest full gc collection (empty: none since the last row)
    COLLECTED_BLOCKS = "collected_blocks"
    GC_GEN0 = "gc_gen0"  # gc.get_count()
    GC_GEN1 = "gc_gen1"
    GC_GEN2 = "gc_gen2"
    GC_COLLECTIONS = "gc_collections"  # total collections so far, all generations
    ERRORS = "errors"  # cumulative step errors
    PID = "pid"
    GENERATION = "generation"  # process generation (0 unless the supervisor restarted the child)


# -- events.jsonl ---------------------------------------------------------------------------------

_FRAME = {"file": STR0, "line": NUM0, "function": STR0, "code": STR0}
_SITE = {
    "site": STR0,
    "file": STR0,
    "line": NUM0,
    "function": STR0,
    "code": STR0,
    "user": BOOL0,
    "kind": STR0,
    "size": NUM0,
    "count": NUM0,
    "size_total": NUM0,
    "count_total": NUM0,
    "alloc": (dict, str, None),
    "traceback": [_FRAME],
}
_GC_COUNTS = {str: NUM0}
_SIZED_COUNTS = {str: {"count": NUM0, "size": NUM0}}
_SNAPSHOT = {
    "snapshot": NUM0,
    "baseline": BOOL0,
    "final": BOOL0,
    "steps": NUM0,
    "steps_since_baseline": NUM0,
    "total": NUM0,
    "cost_s": NUM0,
}
_LIFECYCLE = {
    "generation": NUM0,
    "pid": NUM0,
    "port": NUM0,
    "steps": NUM0,
    "errors": NUM0,
    "returncode": NUM0,
    "uptime_s": NUM0,
    "backoff_s": NUM0,
}
_MARK = shape_of(Mark)

#: Per event kind, the fields readers use (every event: ``t`` a number or null, ``kind`` a string).
EVENT_SHAPES: dict[str, dict[str, Any]] = {
    EventKind.GC_TYPES: {**_SNAPSHOT, "types": _GC_COUNTS, "base": _GC_COUNTS},
    EventKind.PYMPLER_SUMMARY: {
        **_SNAPSHOT,
        "types": _SIZED_COUNTS,
        "base": _SIZED_COUNTS,
        "total_count": NUM0,
        "total_size": NUM0,
    },
    EventKind.TRACEMALLOC_SNAPSHOT: {
        "mode": STR0,
        "snapshot": NUM0,
        "nframes": NUM0,
        "steps": NUM0,
        "seconds": NUM0,
        "rate_in": NUM0,
        "rate_out": NUM0,
        "slowdown_s": NUM0,
        "snapshot_s": NUM0,
        "traced": NUM0,
        "peak": NUM0,
        "survivors": ({"size": NUM0, "count": NUM0}, None),
        "sites": [_SITE],
    },
    EventKind.MEMRAY_CAPTURE: {
        "captured": BOOL0,
        "native": BOOL0,
        "steps": NUM0,
        "seconds": NUM0,
        "slowdown_s": NUM0,
        "capture": STR0,
        "capture_bytes": NUM0,
        "flamegraph": STR0,
        "stats": STR0,
        "errors": (list, None),
        "top_leaks": ([_SITE], None),
        "reports_s": NUM0,
        "reason": STR0,
    },
    EventKind.RETENTION_CHAIN: {
        "object_type": STR0,
        "growth": NUM0,
        "reason": STR0,
        "steps": NUM0,
        "found": BOOL0,
        "text": STR0,
        "root": STR0,
        "root_kind": STR0,
        "user_root": BOOL0,
        "hops": ([{"label": STR0, "type": STR0, "via": STR0}], None),
        "depth": NUM0,
        "search": STR0,
        "instances": NUM0,
        "seconds": NUM0,
        "timed_out": BOOL0,
        "dot": STR0,
        "png": STR0,
    },
    EventKind.SOURCE_LINES: {"lines": {str: [STR0]}},
    EventKind.RESTART: {
        "reason": STR0,
        "generation": NUM0,
        "rss": NUM0,
        "limit": NUM0,
        "mode": STR0,
        "signal": STR0,
        "backoff_s": NUM0,
        "returncode": NUM0,
        "error": STR0,
        "new_generation": NUM0,
        "stopped_after_s": NUM0,
        "killed": BOOL0,
        "healthy_after_s": NUM0,
    },
    EventKind.LOAD_START: shape_of(LoadSettings),
    EventKind.LOAD_END: {
        "sent": NUM0,
        "ok": NUM0,
        "failed": NUM0,
        "errors": ({str: NUM0}, None),
        "started_at": NUM0,
        "ended_at": NUM0,
        "throughput_rps": NUM0,
    },
    **{
        kind: _LIFECYCLE
        for kind in (
            EventKind.START,
            EventKind.READY,
            EventKind.HEALTHY,
            EventKind.UNHEALTHY,
            EventKind.EXIT,
            EventKind.CRASH,
            EventKind.DONE,
            EventKind.WARMUP_END,
        )
    },
    EventKind.PROBE_OVERHEAD: shape_of(ProbeOverhead),
    EventKind.KILLED_AT_CAP: {"rss": NUM0, "max_rss": NUM0},
    EventKind.SNAPSHOT_ERROR: {"probe": STR0, "what": STR0, "error": STR0},
    EventKind.COLLECTIONS: {
        "forced": NUM0,
        "natural": NUM0,
        "forced_s": NUM0,
        "block_reads": NUM0,
        "block_reads_skipped": NUM0,
        "block_reads_s": NUM0,
    },
    EventKind.DECIDED: {"label": STR0, "looks": NUM0, "text": STR0, "window_start": (_MARK, None)},
}
_EVENT = {"t": NUM0, "kind": str}


def check_event(event: dict[str, Any], where: str) -> None:
    """Raise RunFormatError when an event's fields do not have the documented types."""
    kind = event.get("kind")
    problem = shape_error(event, _EVENT, "")
    if problem is None and isinstance(kind, str) and kind in EVENT_SHAPES:
        problem = shape_error(event, EVENT_SHAPES[kind], "")
    if problem:
        raise RunFormatError(f"{where}: {kind if isinstance(kind, str) else 'an'} event: {problem}")
