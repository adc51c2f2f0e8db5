"""The words a run is written in: run statuses, verdict labels and event kinds.

Every layer may import this module (it imports nothing of leaklab). The values are the
strings stored in run files, so ``Status.COMPLETED == "completed"`` holds and a run
written before these enums existed reads the same.
"""

from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """A str-valued enum that prints, formats and serialises as its value (``enum.StrEnum``
    from Python 3.11, written out for 3.10)."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Status(TextEnum):
    """How a run ended (``meta.json`` ``status``)."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    KILLED_AT_CAP = "killed_at_cap"
    TIMED_OUT = "timed_out"


class Verdict(TextEnum):
    """What the analysis concludes about a signal or a run, strongest claim first."""

    LEAK = "LEAK"
    PLATEAU = "PLATEAU"
    NO_LEAK = "NO_LEAK"
    INCONCLUSIVE = "INCONCLUSIVE"


#: Verdict labels in the order reports and the gate list them.
VERDICTS: tuple[str, ...] = tuple(Verdict)


class RestartReason(TextEnum):
    """Why an imported series starts a new process generation (``series_restart`` ``reason``):
    the source said so (a new pid, a new process start time, a counter that started over),
    or memory alone suggested it (a drop to the baseline)."""

    NEW_PID = "new pid"
    NEW_START_TIME = "new start time"
    COUNTER_RESET = "counter reset"
    DROP = "drop to baseline"


class EventKind(TextEnum):
    """The ``kind`` of a line of ``events.jsonl`` (``docs/run-format.md`` documents each)."""

    # the process lifecycle (parent, supervisor, command runs)
    START = "start"
    READY = "ready"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    EXIT = "exit"
    CRASH = "crash"
    DONE = "done"
    RESTART = "restart"
    GAVE_UP = "gave_up"
    KILLED = "killed"
    KILLED_AT_CAP = "killed_at_cap"
    TIMED_OUT = "timed_out"
    INTERRUPT = "interrupt"
    STATUS = "status"
    INPROCESS_START = "inprocess_start"
    SERIES_RESTART = "series_restart"
    # the step loop
    WARMUP_END = "warmup_end"
    STEP_ERROR = "step_error"
    COLLECTIONS = "collections"
    DECIDED = "decided"
    LOOK_ERROR = "look_error"
    PROTOCOL_ERROR = "protocol_error"  # a line from a child that is not a message
    # load generation (service runs)
    LOAD_START = "load_start"
    LOAD_END = "load_end"
    # probes
    PROBE_ERROR = "probe_error"
    PROBE_OVERHEAD = "probe_overhead"
    SNAPSHOT_ERROR = "snapshot_error"
    GC_TYPES = "gc_types"
    PYMPLER_SUMMARY = "pympler_summary"
    PYMPLER_SKIPPED = "pympler_skipped"
    TRACEMALLOC_SNAPSHOT = "tracemalloc_snapshot"
    MEMRAY_STARTED = "memray_started"
    MEMRAY_CAPTURE = "memray_capture"
    RETENTION_CHAIN = "retention_chain"
    SOURCE_LINES = "source_lines"
