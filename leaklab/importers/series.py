"""The one writer of imported runs: points per series in, run directories out.

A source hands :class:`RunSink` chunks of points (epoch seconds, bytes, and where it has
them, a request count and a pid) per series, each series in time order. The sink keeps a
little state per series (last time, generation, the generation's first and highest value)
and appends the rows through :class:`leaklab.store.RunWriter`, so memory stays bounded by
one chunk however long the series are, and no file stays open between chunks.

Everything is written under a staging folder inside ``--out`` and moved into place only
when the whole import succeeded: a failed import leaves nothing behind.

A *restart* starts a new generation, as in a recycled run: a new pid (a ``pid`` column or
label, or a new value of a restart label such as ``instance``), a new process start time
(Prometheus' ``process_start_time_seconds``), a count of work that falls (a process' counters
start over with it), or, where the source says nothing of its processes, a drop to the
baseline (:class:`RestartRule`). Where it does say (a pid, a start time or a count at a point),
a fall in memory at that point is memory freed in a live process, not a restart.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from leaklab import __version__, store
from leaklab.kinds import EventKind, RestartReason, Status

#: Columns of an imported run's samples.csv (a subset of the base columns, in their order).
COLUMNS = ("t", "steps", "rss", "pid", "generation")
#: Points a series holds before they are appended to its run (fewer, larger writes)...
FLUSH_ROWS = 20_000
#: ...and points all series together hold at most (memory stays bounded however many there are).
PENDING_ROWS = 1_000_000
#: Start times closer than this are one process (a start time is read in clock ticks, 10 ms).
SAME_START_S = 0.005


class ImportFailed(Exception):
    """A source that cannot be imported as asked; the message says what to change (exit 2)."""


@dataclass(frozen=True)
class RestartRule:
    """When a fall in memory is a process restart rather than memory being freed.

    A sample is a restart when the generation had risen (its highest level held for
    ``sustained`` samples in a row, above its first value) by at least the smaller of
    ``min_rise`` of its first value and ``noise_multiple`` noise deviations (but at least
    ``floor`` of it), the ``sustained`` samples before were all in the upper half of that rise, and
    this one is back within ``(1 - drop)`` of the rise from the start: all of the growth
    given back at once, as a new process does. A one-sample spike is neither a rise nor a
    restart. ``drop=None`` turns this off (pids and labels still count).
    """

    drop: float | None = 0.8
    min_rise: float = 0.1
    noise_multiple: float = 10.0
    floor: float = 0.002
    sustained: int = 3

    def threshold(self, first: float, noise: float) -> float:
        big = self.min_rise * abs(first)
        if not math.isfinite(noise):
            return big
        return min(big, max(self.noise_multiple * noise, self.floor * abs(first)))

    def restarts(
        self, first: float, peak: float, recent: list[float], seg: np.ndarray, noise: float
    ) -> np.ndarray:
        """For each sample of ``seg``: does it start a new generation? (``peak`` the highest
        sustained level so far, ``recent`` the generation's last values before ``seg``)."""
        if self.drop is None or not len(seg):
            return np.zeros(len(seg), dtype=bool)
        k = self.sustained
        before = ([math.nan] * k + list(recent))[-k:]
        level = sliding_window_view(np.concatenate((before, seg[:-1])), k).min(axis=1)
        highest = np.fmax.accumulate(np.concatenate(([peak], level)))[1:]
        rise = highest - first
        return (
            (rise > 0)
            & (rise >= self.threshold(first, noise))
            & (level >= first + 0.5 * rise)
            & (seg <= first + (1 - self.drop) * rise)
        )


def _noise(values: np.ndarray) -> float:
    """Sample-to-sample noise (robust: the median absolute deviation of the differences)."""
    d = np.diff(values)
    if len(d) < 8:
        return math.nan
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


@dataclass(frozen=True)
class _Evidence:
    """What a source says of its processes besides memory, for each point of a chunk."""

    new: np.ndarray  # a new process starts at this point (its start time changed, a count fell)
    reason: dict[int, str]  # why, at each point where ``new``
    known: np.ndarray  # the point says which process it is (a start time or a count)


def _after_known(values: np.ndarray, last: float) -> np.ndarray:
    """For each point, the last finite value before it (``last`` before the chunk; NaN if none)."""
    joined = np.concatenate(([last], values[:-1]))
    at = np.where(np.isfinite(joined), np.arange(len(joined)), 0)
    return joined[np.maximum.accumulate(at)] if len(joined) else joined


def _evidence(
    state: _Series, n: int, counts: np.ndarray | None, started: np.ndarray | None
) -> _Evidence:
    """Restarts the source itself shows: a new process start time, a cumulative count that fell
    (counters start over with their process). Updates the last start time seen; the last count
    is :meth:`RunSink._steps`' to update."""
    new, known = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    reason: dict[int, str] = {}
    for values, last, why in (
        (started, state.started, RestartReason.NEW_START_TIME),
        (counts, state.last_count, RestartReason.COUNTER_RESET),
    ):
        if values is None:
            continue
        before = _after_known(values, last)
        finite = np.isfinite(values) & np.isfinite(before)
        if why == RestartReason.NEW_START_TIME:
            changed = finite & (np.abs(values - before) > SAME_START_S)
        else:
            changed = finite & (values < before)
        reason.update(dict.fromkeys(np.flatnonzero(changed & ~new).tolist(), why))
        new |= changed
        known |= np.isfinite(values)
    if started is not None and np.isfinite(started).any():
        state.started = float(started[np.isfinite(started)][-1])
    return _Evidence(new, reason, known)


@dataclass
class _Series:
    """What the sink remembers about one series between chunks."""

    writer: store.RunWriter
    labels: dict[str, str]
    t0: float
    last_ts: float = -math.inf
    generation: int = 0
    first: float = math.nan  # the current generation's first value
    peak: float = math.nan  # its highest sustained level so far (RestartRule)
    recent: list[float] = field(default_factory=list)  # its last few values
    noise: float = math.nan
    pid: float = math.nan
    started: float = math.nan  # the last process start time seen
    steps_offset: float = 0.0  # a counter that restarted: what it had counted before
    last_count: float = math.nan
    count0: float = math.nan
    rows: int = 0
    rss_start: float = math.nan
    rss_end: float = math.nan
    rss_peak: float = -math.inf
    gaps: list[float] = field(default_factory=list)  # the first intervals, for interval_s
    restarts: list[dict[str, Any]] = field(default_factory=list)
    pending: list[tuple[np.ndarray, ...]] = field(default_factory=list)  # points not written yet
    pending_rows: int = 0


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _compact(values: np.ndarray | None) -> Any:
    """Whole numbers as integers (written faster and shorter than floats, read back the same):
    an integer array, masked where a value is missing; other values unchanged (NaN is written
    as missing)."""
    if values is None:
        return None
    missing = np.isnan(values)
    known = values[~missing]
    if not len(known) or not ((np.abs(known) < 2**53).all() and (known == np.round(known)).all()):
        return values
    whole = np.where(missing, 0, values).astype(np.int64)
    return np.ma.masked_array(whole, mask=missing) if missing.any() else whole


class RunSink:
    """Appends series to run directories under ``out``; :meth:`finish` puts them in place.

    ``source`` is recorded in every run's ``meta.json`` (``kind`` and where the data came
    from); ``name`` is the runs' scenario name, each series' ``variant`` its label text.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        source: Mapping[str, Any],
        *,
        name: str,
        warmup_s: float = 0.0,
        rule: RestartRule | None = None,
        counts_steps: bool = False,
        argv: list[str] | None = None,
    ) -> None:
        self.out = Path(out)
        self.source = dict(source)
        self.name = name
        self.warmup_s = warmup_s
        self.rule = rule or RestartRule()
        self.counts_steps = counts_steps
        self.argv = argv or []
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=".leaklab-import-", dir=self.out))
        except OSError as exc:
            raise ImportFailed(
                f"--out {self.out}: cannot write there ({exc.strerror or exc})"
            ) from None
        self.series: dict[str, _Series] = {}
        self.pending_rows = 0

    def __enter__(self) -> RunSink:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

    # -- writing ---------------------------------------------------------------------------

    def _open(self, key: str, labels: Mapping[str, str], ts0: float) -> _Series:
        variant = key or None
        meta = {
            "scenario": self.name,
            "variant": variant,
            "description": f"imported from {self.source.get('kind')}: {self.source.get('from')}",
            "params": {},
            "argv": self.argv,
            "versions": {"leaklab": __version__},
            "start": store.iso(_utc(ts0)),
            "end": None,
            "config": {
                "duration_s": None,
                "steps": None,
                "rate": None,
                "interval_s": None,
                "warmup": {"seconds": self.warmup_s} if self.warmup_s else {},
                "counts_steps": self.counts_steps,
                "probes": [],
                "max_rss": None,
            },
            "source": {**self.source, "series": dict(labels), "restart_rule": asdict(self.rule)},
        }
        path = store.new_run_dir(self.staging, self.name, variant, when=_utc(ts0))
        # No fsync: the run is staged, and moved into place only when the import is complete.
        state = _Series(store.RunWriter(path, meta, COLUMNS, sync=False), dict(labels), t0=ts0)
        # no file stays open between writes: a fleet may have thousands of runs
        state.writer.release()
        self.series[key] = state
        return state

    def add(
        self,
        key: str,
        labels: Mapping[str, str],
        ts: np.ndarray,
        values: np.ndarray,
        counts: np.ndarray | None = None,
        pids: np.ndarray | None = None,
        started: np.ndarray | None = None,
    ) -> None:
        """Append points of series ``key`` (epoch seconds ``ts``, bytes ``values``; where the
        source has them, a cumulative ``counts`` of work done, a ``pids`` column and the process'
        start time ``started`` in epoch seconds)."""
        ts = np.asarray(ts, dtype=float)
        values = np.asarray(values, dtype=float)
        counts = None if counts is None else np.asarray(counts, dtype=float)
        pids = None if pids is None else np.asarray(pids, dtype=float)
        started = None if started is None else np.asarray(started, dtype=float)
        keep = np.isfinite(ts) & np.isfinite(values)
        if not keep.all():
            ts, values = ts[keep], values[keep]
            counts = None if counts is None else counts[keep]
            pids = None if pids is None else pids[keep]
            started = None if started is None else started[keep]
        if not len(ts):
            return
        state = self.series.get(key) or self._open(key, labels, float(ts[0]))
        self._check_order(key, state, ts)
        generation = self._generations(
            state, ts, values, pids, _evidence(state, len(ts), counts, started)
        )
        steps = self._steps(state, counts)
        if len(state.gaps) < 64:
            state.gaps.extend(
                np.diff(np.concatenate(([state.last_ts], ts)) if state.rows else ts)[:64].tolist()
            )
        state.last_ts = float(ts[-1])
        if not state.rows:
            state.rss_start = float(values[0])
        state.rows += len(ts)
        state.rss_end = float(values[-1])
        state.rss_peak = max(state.rss_peak, float(values.max()))
        nan = np.full(len(ts), np.nan)
        state.pending.append(
            (
                np.round(ts - state.t0, 6),
                nan if steps is None else steps,
                values,
                nan if pids is None else pids,
                generation,
            )
        )
        state.pending_rows += len(ts)
        self.pending_rows += len(ts)
        if state.pending_rows >= FLUSH_ROWS:
            self._flush(state)
        if self.pending_rows >= PENDING_ROWS:
            for other in self.series.values():
                self._flush(other)

    def _flush(self, state: _Series) -> None:
        """Append a series' pending points to its run (and close its files until the next time)."""
        if not state.pending:
            return
        t, steps, rss, pid, generation = (
            np.concatenate(parts) for parts in zip(*state.pending, strict=True)
        )
        state.writer.samples(
            {
                "t": _compact(t),
                "steps": _compact(steps),
                "rss": _compact(rss),
                "pid": _compact(pid),
                "generation": generation,
            }
        )
        state.writer.release()
        self.pending_rows -= state.pending_rows
        state.pending, state.pending_rows = [], 0

    def _generations(
        self,
        state: _Series,
        ts: np.ndarray,
        values: np.ndarray,
        pids: np.ndarray | None,
        evidence: _Evidence,
    ) -> np.ndarray:
        """The generation of every point: a new one at each restart (a new pid, start time or
        counter; a drop to baseline where the source says nothing of its processes)."""
        n = len(values)
        generation = np.empty(n, dtype=int)
        if not state.rows:
            state.first = float(values[0])
            state.pid = float(pids[0]) if pids is not None else math.nan
        if not math.isfinite(state.noise):
            state.noise = _noise(values)
        i = 0
        while i < n:
            j, reason = self._next_restart(state, values, pids, i, evidence)
            generation[i:j] = state.generation
            if j > i:
                self._advance(state, values[i:j])
                if pids is not None:
                    state.pid = float(pids[j - 1])
            if j == n:
                break
            state.generation += 1
            state.restarts.append(
                {
                    "t": round(float(ts[j]) - state.t0, 6),
                    "reason": reason,
                    "new_generation": state.generation,
                    "before": state.recent[-1] if state.recent else None,
                    "after": float(values[j]),
                }
            )
            state.first, state.peak, state.recent = float(values[j]), math.nan, [float(values[j])]
            if pids is not None:
                state.pid = float(pids[j])
            generation[j] = state.generation
            i = j + 1
        return generation

    def _advance(self, state: _Series, seg: np.ndarray) -> None:
        """Take ``seg`` (no restart in it) into the generation's highest level and recent values."""
        k = self.rule.sustained
        joined = np.concatenate((state.recent, seg))
        if len(joined) >= k:
            state.peak = float(
                np.fmax(state.peak, sliding_window_view(joined, k).min(axis=1).max())
            )
        state.recent = joined[-k:].tolist()

    def _next_restart(
        self,
        state: _Series,
        values: np.ndarray,
        pids: np.ndarray | None,
        i: int,
        evidence: _Evidence,
    ) -> tuple[int, str]:
        """The first index from ``i`` on that starts a new generation (``len(values)`` if none)."""
        n = len(values)
        j, reason = n, ""
        if pids is not None:
            previous_pid = np.concatenate(([state.pid], pids[i : n - 1]))
            changed = np.isfinite(pids[i:]) & np.isfinite(previous_pid) & (pids[i:] != previous_pid)
            if changed.any():
                j, reason = i + int(np.flatnonzero(changed)[0]), RestartReason.NEW_PID
        said = np.flatnonzero(evidence.new[i:j])
        if len(said):
            j = i + int(said[0])
            reason = evidence.reason[j]
        known = evidence.known[i:j] | (np.isfinite(pids[i:j]) if pids is not None else False)
        if known.all():
            return j, reason  # the source says which process each point is: only it restarts
        drop = self.rule.restarts(state.first, state.peak, state.recent, values[i:j], state.noise)
        drop &= ~known  # a fall where the source names the process is memory freed, not a restart
        if drop.any():
            j, reason = i + int(np.flatnonzero(drop)[0]), RestartReason.DROP
        return j, reason

    @staticmethod
    def _steps(state: _Series, counts: np.ndarray | None) -> np.ndarray | None:
        """Steps since the series began, from a cumulative count that restarts at zero with
        its process (each fall adds what was counted before it)."""
        if counts is None:
            return None
        ok = np.isfinite(counts)
        if not ok.any():
            return np.full(len(counts), np.nan)
        if not math.isfinite(state.count0):
            state.count0 = float(counts[ok][0])
            state.last_count = state.count0
        known = counts[ok]
        previous = np.concatenate(([state.last_count], known[:-1]))
        fell = known < previous
        offsets = state.steps_offset + np.cumsum(np.where(fell, previous, 0.0))
        steps = np.full(len(counts), np.nan)
        steps[ok] = offsets + known - state.count0
        state.steps_offset = float(offsets[-1])
        state.last_count = float(known[-1])
        return steps

    @staticmethod
    def _check_order(key: str, state: _Series, ts: np.ndarray) -> None:
        where = f"series {key}: " if key else ""
        diffs = np.diff(ts)
        if len(ts) and ts[0] <= state.last_ts:
            bad, before, at = 0, state.last_ts, ts[0]
        elif (diffs <= 0).any():
            bad = int(np.flatnonzero(diffs <= 0)[0]) + 1
            before, at = ts[bad - 1], ts[bad]
        else:
            return
        what = "duplicate" if at == before else "unsorted"
        raise ImportFailed(
            f"{where}{what} timestamps: {store.iso(_utc(at))} comes after "
            f"{store.iso(_utc(before))}; a series must be in time order with one sample per time "
            "(sort it and drop duplicates)"
        )

    # -- ending ----------------------------------------------------------------------------

    def finish(self) -> list[Path]:
        """Close every run, record its counters, and move it from staging into ``out``."""
        if not self.series:
            self.abort()
            raise ImportFailed(
                "no data: the source has no sample with both a time and a memory value"
            )
        placed: list[Path] = []
        try:
            for state in self.series.values():
                self._flush(state)
                self._close(state)
            for state in self.series.values():
                placed.append(self._place(state.writer.path))
        except BaseException:
            for path in placed:
                shutil.rmtree(path, ignore_errors=True)
            self.abort()
            raise
        shutil.rmtree(self.staging, ignore_errors=True)
        return placed

    def _close(self, state: _Series) -> None:
        writer = state.writer
        for restart in state.restarts:
            writer.event(EventKind.SERIES_RESTART, **restart)
        interval = float(np.median(state.gaps)) if state.gaps else None
        duration = state.last_ts - state.t0
        config = dict(writer.meta["config"], interval_s=interval, duration_s=duration)
        counters = {
            "samples": state.rows,
            "events": len(state.restarts),
            "rss_start": state.rss_start,
            "rss_end": state.rss_end,
            "rss_peak": state.rss_peak,
            "generations": state.generation + 1,
            "restarts": {"detected": len(state.restarts)},
        }
        if math.isfinite(state.count0):
            counters["steps"] = int(state.steps_offset + state.last_count - state.count0)
        source = {**writer.meta["source"], **self.source}
        writer.update_meta(
            status=Status.COMPLETED,
            source=source,
            end=store.iso(_utc(state.last_ts)),
            duration_s=duration,
            config=config,
            counters=counters,
        )
        writer.close()

    def _place(self, staged: Path) -> Path:
        for n in range(1000):
            target = self.out / (staged.name if n == 0 else f"{staged.name}.{n}")
            if not target.exists():
                os.rename(staged, target)
                return target
        raise ImportFailed(f"cannot find a free name for {staged.name} under {self.out}")

    def abort(self) -> None:
        """Remove everything this import wrote."""
        for state in self.series.values():
            state.writer.close()
        shutil.rmtree(self.staging, ignore_errors=True)
