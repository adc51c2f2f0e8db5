"""Memory retained per call of a function, found the way CPython's ``-R`` hunts refleaks.

The function is called ``warmup`` times first, so caches that fill once, lazily
imported modules, interned strings and the interpreter's own first-call work are
done. Then it is called in ``rounds`` rounds of ``calls`` calls each; after every
round a full ``gc.collect()`` runs and two exact counters are read: the bytes
traced by :mod:`tracemalloc` and :func:`sys.getallocatedblocks`.

A round *retains* when its traced bytes grew by more than ``max_per_call`` per
call. Like ``-R``, a leak needs *every* round to retain: one-off growth shows in
one round at most and a bounded cache stops growing once full. When every round
retains, the function is called on until ``patience`` calls have been made in all
(a cache or pool that fills more slowly than the rounds run is full by then), and
as many confirming rounds run again under an allocation-site snapshot and a type
census; the check fails only when they all retain too, and the result names the
allocation sites (file:line) and the object types that grew, blamed and named as the
probes of ``leaklab run`` name them (:mod:`leaklab.naming`).

Nothing here keeps a reference to what the function returns or allocates, and the
bookkeeping between two readings lives in preallocated arrays, so the measurement
does not measure itself.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
import linecache
import os
import statistics
import sys
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from leaklab import naming, units
from leaklab.aio import close_loop


class OptionError(ValueError):
    """A bad option; the message names the option and what it accepts."""


class BudgetExceeded(RuntimeError):
    """The check ran out of its time budget before it could decide."""

    def __init__(self, calls: int, seconds: float, suspected: float | None = None) -> None:
        text = f"its {seconds:g} s time budget ran out after {calls:,} calls"
        if suspected is not None:
            text += (
                f" while confirming: every measured round retained "
                f"({units.format_size(suspected, signed=True)}/call in the median round)"
            )
        super().__init__(text)
        self.calls = calls
        self.seconds = seconds
        self.suspected = suspected  # bytes per call, when every measured round retained


def _option(default: float, text: str, minimum: int | None = None) -> Any:
    """One option of :class:`Options`: its default, what it means, and (for a count) its least
    value."""
    return field(default=default, metadata={"help": text, "minimum": minimum})


@dataclass(frozen=True)
class Options:
    """What ``@pytest.mark.leaklab(...)`` and ``leaklab_check(...)`` accept.

    The one declaration of every option (name, type, default, help): the marker's
    help line, the accepted keywords and the error messages are all read from it.
    """

    max_per_call: float = _option(0.0, "bytes a call may retain (64, '64B', '1KB', '16B/call')")
    warmup: int = _option(5, "calls before measuring (caches fill, modules import)", minimum=0)
    calls: int = _option(25, "calls per measured round", minimum=1)
    rounds: int = _option(4, "measured rounds that must all retain for a leak", minimum=1)
    patience: int = _option(
        1000,
        "calls made in all before the confirming rounds of a function that retains "
        "(a bound filled within them passes)",
        minimum=0,
    )
    frames: int = _option(
        8, "tracemalloc frames kept per allocation, for the failure message", minimum=1
    )
    top: int = _option(5, "allocation sites and types named in the failure message", minimum=1)

    @classmethod
    def names(cls) -> list[str]:
        """Every option's name, ``max_per_call`` (the one a marker may give positionally) first."""
        return [f.name for f in fields(cls)]

    @classmethod
    def help(cls, name: str) -> str:
        """What option ``name`` means, and its default."""
        option = next(f for f in fields(cls) if f.name == name)
        return f"{option.metadata['help']}; default {option.default:g}"

    @classmethod
    def signature(cls) -> str:
        """The options as a call signature with their defaults:
        ``max_per_call=0, *, warmup=5, ...``."""
        first, *rest = (f"{f.name}={f.default:g}" for f in fields(cls))
        return ", ".join([first, "*", *rest])

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: Options | None = None) -> Options:
        """Options from user keywords, each checked: unknown names and bad values raise
        :class:`OptionError`."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            listing = "; ".join(f"{name}: {cls.help(name)}" for name in cls.names())
            raise OptionError(f"unknown option {unknown[0]!r}; accepted options: {listing}")
        merged = dict(vars(base or cls()))
        minimum = {f.name: f.metadata["minimum"] for f in fields(cls)}
        for name, raw in values.items():
            merged[name] = (
                _parse_per_call(raw)
                if minimum[name] is None
                else _parse_count(name, raw, minimum[name])
            )
        return cls(**merged)


def _parse_per_call(raw: Any) -> float:
    try:
        if isinstance(raw, str) and "/" in raw:
            limit = units.parse_growth(raw)
            if limit.bytes_per_step is None:
                raise units.UnitError(f"max_per_call is per call, not per time: {raw!r}")
            return limit.bytes_per_step
        return float(units.parse_size(raw))
    except units.UnitError as exc:
        raise OptionError(f"max_per_call: {exc}; {Options.help('max_per_call')}") from None


def _parse_count(name: str, raw: Any, lowest: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < lowest:
        raise OptionError(
            f"{name} must be an integer >= {lowest}, got {raw!r}; {Options.help(name)}"
        )
    return raw


@dataclass(frozen=True)
class Site:
    """An allocation site whose live memory grew: where, by how much per call, and who called it."""

    filename: str
    lineno: int
    bytes_per_call: float
    blocks_per_call: float
    #: the frame that led there: the one blamed for the growth (the user's line under which a
    #: library allocated), else the test's line that called it
    via: tuple[str, int] | None = None
    #: the frames between ``via`` and the allocating line (a library's calls), outermost first
    path: tuple[tuple[str, int], ...] = ()

    def location(self) -> str:
        return _where((self.filename, self.lineno))

    def source(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def lines(self) -> list[str]:
        """The site in a failure message: the figures, the allocating line, then how it was
        reached."""
        lines = [
            f"  {units.format_size(self.bytes_per_call, signed=True) + '/call':>12}  "
            f"{self.blocks_per_call:+6.2f} blocks/call  {self.location()}  {self.source()}"
        ]
        if self.via is not None:
            lines.append(
                f"{'':>36}called from {_where(self.via)}  {linecache.getline(*self.via).strip()}"
            )
        if self.path:
            lines.append(f"{'':>36}through {' > '.join(map(_where, self.path))}")
        return lines


def _where(frame: tuple[str, int]) -> str:
    return f"{naming.short_path(frame[0])}:{frame[1]}"


@dataclass(frozen=True)
class TypeGrowth:
    name: str
    per_call: float


@dataclass
class Result:
    """What :func:`measure` found. ``leaked`` is the verdict; the rest explains it."""

    leaked: bool
    options: Options
    round_bytes: list[int]  # traced bytes retained by each round (measured, then confirming)
    round_blocks: list[int]  # allocated blocks retained by each round
    confirmed_rounds: int  # how many of the rounds above are confirming rounds
    seconds: float
    sites: list[Site] = field(default_factory=list)
    types: list[TypeGrowth] = field(default_factory=list)
    patience_calls: int = 0  # calls made between the measured and the confirming rounds, unmeasured

    @property
    def calls_measured(self) -> int:
        return len(self.round_bytes) * self.options.calls

    @property
    def calls_made(self) -> int:
        """Every call of the function: warm-up, measured rounds, patience, confirming rounds."""
        return self.options.warmup + self.calls_measured + self.patience_calls

    @property
    def bytes_per_call(self) -> float:
        """Bytes retained per call in the median round: one round disturbed by another
        thread or an interpreter table resize does not move it."""
        return statistics.median(self.round_bytes) / self.options.calls if self.round_bytes else 0.0

    @property
    def blocks_per_call(self) -> float:
        return (
            statistics.median(self.round_blocks) / self.options.calls if self.round_blocks else 0.0
        )

    def summary(self) -> str:
        o = self.options
        rounds = ", ".join(units.format_size(b, signed=True) for b in self.round_bytes)
        verdict = "retains memory on every call" if self.leaked else "no memory retained per call"
        return (
            f"{verdict}: {units.format_size(self.bytes_per_call, signed=True)}/call "
            f"({self.blocks_per_call:+.2f} blocks/call, median round) over "
            f"{len(self.round_bytes)} rounds of {o.calls} calls after {o.warmup} warm-up "
            f"calls{self._patience_text()}; limit {units.format_size(o.max_per_call)}/call; bytes "
            f"retained per round: {rounds}"
        )

    def _patience_text(self) -> str:
        if not self.patience_calls:
            return ""
        return (
            " (the confirming rounds after "
            f"{self.calls_made - self.confirmed_rounds * self.options.calls} calls in all)"
        )

    def message(self, what: str = "the function") -> str:
        """A failure message: the figures, the growing allocation sites and the growing types."""
        lines = [f"leaklab: {what} {self.summary()}"]
        if self.sites:
            lines.append("top growing allocation sites (live memory added per call):")
            for site in self.sites:
                lines.extend(site.lines())
        if self.types:
            lines.append("growing object types (objects added per call):")
            lines.extend(f"  {t.per_call:+8.2f}  {t.name}" for t in self.types)
        return "\n".join(lines)


def measure(
    call: Callable[[], Any],
    options: Options | None = None,
    origin: str | None = None,
    budget: float | None = None,
) -> Result:
    """Call ``call`` repeatedly and decide whether it retains memory per call.

    ``call`` takes no arguments; a coroutine it returns is run to completion on a
    private event loop (one loop for every call, so the loop's own warm-up is
    discarded too). ``origin`` (a file name, e.g. the test's) is where the failure
    message looks for the caller of each growing allocation site. With ``budget`` (seconds),
    a call that starts past it raises :class:`BudgetExceeded` instead.

    >>> kept = []
    >>> measure(lambda: kept.append(object())).leaked
    True
    """
    options = options or Options()
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        # One frame per allocation while only counting: each kept frame slows every
        # allocation of the function (a function that retains gets ``frames`` below).
        tracemalloc.start(1)
    frozen = _freeze()
    began = time.perf_counter()
    runner = _Runner(call, budget)
    try:
        for _ in range(options.warmup):
            runner()
        round_bytes, round_blocks = _rounds(runner, options.rounds, options.calls)
        result = Result(
            _every_round_retains(round_bytes, options), options, round_bytes, round_blocks, 0, 0.0
        )
        if result.leaked:
            runner.suspected = statistics.median(round_bytes) / options.calls
            if started_tracing and options.frames > 1:
                # Deeper tracebacks, to name each growing site's caller. Restarted before the
                # patience calls: objects kept from before are untraced now, and a bounded
                # store replacing them with traced ones would look like growth until it has
                # turned over, which the patience calls give it time to do.
                tracemalloc.stop()
                tracemalloc.start(options.frames)
            result.patience_calls = max(
                0, options.patience - options.warmup - options.rounds * options.calls
            )
            for _ in range(result.patience_calls):
                runner()
            if frozen:
                # The census must see every object, and the confirming rounds must not
                # depend on the freeze: back to plain (slower) full collections.
                gc.unfreeze()
                frozen = False
            _confirm(runner, result, started_tracing, origin)
    finally:
        runner.close()
        if frozen:
            gc.unfreeze()
        if started_tracing:
            tracemalloc.stop()
    result.seconds = time.perf_counter() - began
    return result


def _confirm(runner: _Runner, result: Result, only_new: bool, origin: str | None) -> None:
    """The confirming rounds, between two allocation snapshots and two type censuses: the
    verdict is theirs, and the sites and types that grew in them explain it."""
    options = result.options
    _census((), only_new, [])  # first use fills caches outside the counted window
    census_before = _census((), only_new)
    snapshot_before = tracemalloc.take_snapshot()
    more_bytes, more_blocks = _rounds(runner, options.rounds, options.calls)
    snapshot_after = tracemalloc.take_snapshot()
    census_after = _census(
        (census_before, snapshot_before, snapshot_after, more_bytes, more_blocks), only_new
    )
    result.leaked = _every_round_retains(more_bytes, options)
    result.round_bytes += more_bytes
    result.round_blocks += more_blocks
    result.confirmed_rounds = options.rounds
    calls = options.rounds * options.calls
    result.sites = _growing_sites(snapshot_before, snapshot_after, calls, options.top, origin)
    result.types = _growing_types(census_before, census_after, calls, options.top)
    del snapshot_before, snapshot_after, census_before, census_after


def _freeze() -> bool:
    """Move every object that exists now out of the collector's reach, so each
    ``gc.collect()`` between rounds costs the objects made since, not the whole heap.

    Those objects are untraced (tracing starts with the check), so keeping their
    cyclic garbage a little longer cannot show as retained bytes. Skipped when
    something else already froze objects: its freeze is not ours to undo.
    """
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def _every_round_retains(round_bytes: list[int], options: Options) -> bool:
    threshold = options.max_per_call * options.calls
    return all(retained > threshold for retained in round_bytes)


def _settle(traced: array[int], blocks: array[int], slot: int) -> None:
    # As regrtest -R does: CPython's type attribute cache keeps the last name string looked
    # up in each of its 4,096 slots, chosen by the string's address, so names built per call
    # (getattr(self, f"visit_{kind}")) fill it over tens of thousands of lookups.
    _clear_type_cache()
    gc.collect()
    # Stored into preallocated arrays, the readings leave no Python object behind.
    traced[slot] = tracemalloc.get_traced_memory()[0]
    blocks[slot] = sys.getallocatedblocks()


#: The longest switch interval the rounds set: a call that gives up the GIL while another
#: thread computes waits up to this long to get it back.
HELD_SWITCH_INTERVAL_MAX_S = 1.0
BETWEEN_ROUNDS_S = 0.001


def _rounds(runner: _Runner, rounds: int, calls: int) -> tuple[list[int], list[int]]:
    """Bytes and blocks retained by each of ``rounds`` rounds of ``calls`` calls."""
    traced = array("q", bytes(8 * (rounds + 1)))
    blocks = array("q", bytes(8 * (rounds + 1)))
    slots = iter(
        range(1, rounds + 1)
    )  # made before the first reading: it lives through every round
    started = time.perf_counter()
    _settle(traced, blocks, 0)  # the first reading pays for anything the reading sets up
    round_s = time.perf_counter() - started + calls * runner.mean_call_s
    # The counters are process-wide: another thread allocating in the middle of a round
    # counts as the round's. A switch interval longer than a round (in wall time, which a busy
    # machine stretches) keeps the GIL with it unless a call gives it up itself (I/O, a lock,
    # a sleep); between rounds, a short sleep lets waiting threads finish what they were doing
    # (what they make and drop by the next reading nets to nothing).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(HELD_SWITCH_INTERVAL_MAX_S, max(0.25, interval, 4 * round_s)))
    try:
        time.sleep(BETWEEN_ROUNDS_S)
        _settle(traced, blocks, 0)
        for slot in slots:
            time.sleep(BETWEEN_ROUNDS_S)
            for _ in range(calls):
                runner()
            _settle(traced, blocks, slot)
    finally:
        sys.setswitchinterval(interval)
    return (
        [traced[i] - traced[i - 1] for i in range(1, rounds + 1)],
        [blocks[i] - blocks[i - 1] for i in range(1, rounds + 1)],
    )


_clear_type_cache: Callable[[], None] = getattr(sys, "_clear_type_cache", lambda: None)


class _Runner:
    """Calls the function; runs a returned coroutine on one private event loop."""

    def __init__(self, call: Callable[[], Any], budget: float | None = None) -> None:
        self.call = call
        self.loop: asyncio.AbstractEventLoop | None = None
        self.budget = budget
        self.deadline = None if budget is None else time.perf_counter() + budget
        self.calls = 0
        self.spent_s = 0.0
        self.suspected: float | None = None

    @property
    def mean_call_s(self) -> float:
        return self.spent_s / self.calls if self.calls else 0.0

    def __call__(self) -> None:
        started = time.perf_counter()
        if self.deadline is not None and started > self.deadline:
            raise BudgetExceeded(self.calls, self.budget or 0.0, self.suspected)
        self.calls += 1
        result = self.call()
        if inspect.isawaitable(result):
            self._run(result)
        self.spent_s += time.perf_counter() - started

    def _run(self, awaitable: Any) -> None:
        if self.loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                raise RuntimeError(
                    "leaklab cannot run a coroutine while an event loop is already running in this "
                    "thread; check async code from a plain (sync) test: the check runs its own loop"
                )
            self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        if self.loop is None:
            return
        loop, self.loop = self.loop, None
        close_loop(loop)


def _census(
    exclude: tuple[Any, ...], only_new: bool, objects: list[Any] | None = None
) -> Counter[type]:
    """Live objects by type: every object the collector tracks, plus the untracked ones
    (str, bytes, int, float ...) counted once per reference a tracked object holds.

    With ``only_new``, only objects allocated since tracing started are counted: the
    walk stays whole, but the counting (which allocates, and every allocation is being
    traced) shrinks to what the check itself saw allocated.
    """
    if objects is None:
        objects = gc.get_objects()
    counts: Counter[type] = Counter()
    _tally(counts.update, objects, only_new)
    del objects
    for own in exclude:  # the check's own bookkeeping, alive while this census counts
        _tally(counts.subtract, _reachable(own), only_new)
    return counts


def _tally(count: Callable[[Any], None], objects: list[Any], only_new: bool) -> None:
    untracked = list(itertools.filterfalse(gc.is_tracked, gc.get_referents(*objects)))
    for group in (objects, untracked):
        chosen = itertools.compress(group, map(_traceback_of, group)) if only_new else group
        count(map(type, chosen))


# The raw lookup returns None for an object allocated before tracing started, and
# builds nothing for it: cheap enough to ask of every live object.
_traceback_of = getattr(tracemalloc, "_get_object_traceback", tracemalloc.get_object_traceback)


def _reachable(root: Any) -> list[Any]:
    """``root`` and the tracked objects reachable from it (a snapshot is tuples of tuples)."""
    found, todo, seen = [], [root], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen or not gc.is_tracked(obj) or isinstance(obj, type):
            continue
        seen.add(id(obj))
        found.append(obj)
        todo.extend(gc.get_referents(obj))
    return found


def _growing_types(
    before: Counter[type], after: Counter[type], calls: int, top: int
) -> list[TypeGrowth]:
    grown: Counter[str] = Counter()
    for kind, n in after.items():
        grown[naming.type_name(kind)] += n - before.get(kind, 0)
    # Below one object per twenty calls is the census's own bookkeeping, not the function.
    floor = max(1, calls // 20)
    ranked = sorted(
        (item for item in grown.items() if item[1] >= floor), key=lambda item: (-item[1], item[0])
    )
    return [TypeGrowth(name, diff / calls) for name, diff in ranked[:top]]


def _growing_sites(
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    calls: int,
    top: int,
    origin: str | None,
) -> list[Site]:
    """The sites that grew between the snapshots, blamed and ranked as the probes do
    (:func:`leaklab.naming.rank_sites`); the check's own allocations are leaklab's, so blamed on
    no one."""
    stats = (
        (d.traceback, d.size_diff, d.count_diff, d.size, d.count)
        for d in after.compare_to(before, "traceback")
    )
    return [
        _site(entry, calls, origin) for entry in naming.rank_sites(stats, naming.Classifier(), top)
    ]


def _site(entry: naming.SiteGrowth, calls: int, origin: str | None) -> Site:
    """A blamed site as the failure message shows it: where it allocated, and the blamed frame
    as its caller (else the line of ``origin``, the test, that led there)."""
    alloc = entry.alloc
    if entry.frame != alloc:
        return Site(
            alloc[0],
            alloc[1],
            entry.size / calls,
            entry.count / calls,
            entry.frame,
            _between(entry.best[1], entry.frame, alloc),
        )
    via = _caller_in(entry.best[1], origin, alloc) if origin is not None else None
    return Site(alloc[0], alloc[1], entry.size / calls, entry.count / calls, via)


def _between(
    frames: list[tuple[str, int]], first: tuple[str, int], last: tuple[str, int]
) -> tuple[tuple[str, int], ...]:
    """The frames of a traceback strictly between ``first`` (its latest call) and ``last``, the
    allocating frame; none when the traceback does not run from one to the other."""
    if not frames or frames[-1] != last or first not in frames:
        return ()
    start = len(frames) - frames[::-1].index(first)
    return tuple(frames[start:-1])


def _caller_in(
    frames: list[tuple[str, int]], origin: str, site: tuple[str, int]
) -> tuple[str, int] | None:
    wanted = os.path.normcase(os.path.abspath(origin))
    for frame in frames:
        if os.path.normcase(os.path.abspath(frame[0])) == wanted and frame != site:
            return frame
    return None
