"""From growth estimates to one verdict: LEAK, PLATEAU, NO_LEAK or INCONCLUSIVE.

Each signal is judged on its own first (:func:`judge`), then :func:`combine`
decides which signals to trust:

* process memory (``rss``, ``uss``) sees everything, Python or native, but is noisy;
* the Python heap (``blocks``, ``traced``) is exact but blind to native memory.

RSS growing with flat blocks points at native memory (a C extension, buffers
from ``malloc``) or at allocator fragmentation; blocks growing with RSS flat
means objects pile up in memory the allocator already had. A growth that stops
before the end of the run is a PLATEAU (a cache or pool filling to its bound);
a rise that keeps falling back to the same floor is a sawtooth, not a leak.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from leaklab import units
from leaklab.analysis.growth import Growth, GrowthOptions
from leaklab.kinds import Verdict as Label

TAIL_FRACTION = GrowthOptions().tail_fraction
#: Resets (and so troughs) needed before a signal is judged by its troughs.
MIN_RESETS = 5

PROCESS_SIGNALS = ("rss", "uss")
HEAP_SIGNALS = ("traced", "blocks")

NAMES = {"rss": "RSS", "uss": "USS", "blocks": "Allocated blocks", "traced": "Traced memory"}


@dataclass(frozen=True)
class Thresholds:
    """When growth counts as a leak. Growth is *material* when it exceeds both the
    per-step and the per-hour bound (the per-step bound times the run's step rate,
    and the per-hour bound, whichever is larger, in units per second).

    Defaults: 16 bytes/step and 1 MB/h for memory; 0.05 blocks/step and 10,000
    blocks/h for allocated blocks; at least 8 samples after the warm-up; growth in the
    last third below 25% of the whole-window rate means it stopped (PLATEAU). A signal
    that drops back at least five times (by half its range) is judged by its troughs:
    their slope, with its interval, against the same threshold.
    """

    min_bytes_per_step: float = 16.0
    min_mb_per_hour: float = 1.0
    min_blocks_per_step: float = 0.05
    min_blocks_per_hour: float = 10_000.0
    min_samples: int = 8
    plateau_ratio: float = 0.25

    def material_rate(self, growth: Growth) -> float:
        """Units per second above which growth of this signal counts."""
        if growth.unit == "blocks":
            per_s, per_step = self.min_blocks_per_hour / 3600, self.min_blocks_per_step
        else:
            per_s, per_step = self.min_mb_per_hour * 1e6 / 3600, self.min_bytes_per_step
        if math.isfinite(growth.steps_per_s) and growth.steps_per_s > 0:
            return max(per_s, per_step * growth.steps_per_s)
        return per_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    label: str
    reasons: list[str] = field(default_factory=list)
    signal: str = ""
    more_time_s: float | None = None

    def __str__(self) -> str:
        return f"{self.label}: " + " ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        more = self.more_time_s
        return {
            "label": self.label,
            "reasons": list(self.reasons),
            "signal": self.signal,
            "more_time_s": None if more is None or not math.isfinite(more) else round(more, 1),
        }


def _rate(growth: Growth, value: float, per: str = "step") -> str:
    """``1.2 KB/step``, ``3 blocks/s``: a figure of this signal, in its unit."""
    return units.format_growth(value, growth.unit, per)


def _describe(growth: Growth) -> str:
    """``1.2 KB/step (95% CI 1.1 KB/step to 1.3 KB/step), 8.9 MB/h (+12%/h)``, or per second when
    steps are unknown; an interval too narrow to show reads ``95% CI within ±0.1%``."""
    per = "step" if math.isfinite(growth.per_step) else "s"
    value, (lo, hi) = (
        (growth.per_step, growth.ci95_per_step) if per == "step" else (growth.per_s, growth.ci95)
    )
    low, high = _rate(growth, lo, per), _rate(growth, hi, per)
    if low == high and value:
        interval = f"95% CI within \u00b1{max(abs(hi - value), abs(value - lo)) / abs(value):.1%}"
    else:
        interval = f"95% CI {units.format_interval(low, high)}"
    core = f"{_rate(growth, value, per)} ({interval})"
    if growth.unit == "bytes":
        core += f", {units.format_size(growth.per_hour)}/h"
        if math.isfinite(growth.pct_per_hour):
            core += f" ({growth.pct_per_hour:+,.0f}%/h)"
    return core


def _threshold_text(growth: Growth, rate: float) -> str:
    if math.isfinite(growth.steps_per_s) and growth.steps_per_s > 0:
        return _rate(growth, rate / growth.steps_per_s)
    return _rate(growth, rate, "s")


def _more_time(
    growth: Growth, target_half_width: float, interval: tuple[float, float] | None = None
) -> float:
    """Extra seconds until the interval is ``target_half_width`` wide, assuming the
    half-width shrinks as window^(-3/2) (a trend in stationary noise); 20% margin."""
    lo, hi = interval if interval is not None else growth.ci95
    half = (hi - lo) / 2
    window = max(growth.window_s, 1e-9)
    if not (math.isfinite(half) and half > 0 and target_half_width > 0):
        return math.nan
    needed = window * (half / target_half_width) ** (2 / 3) * 1.2
    return max(needed - window, 0.1 * window)


def _period(growth: Growth) -> str:
    """`` (resets every ~2,000 steps)`` or every ~N seconds when steps are unknown."""
    if growth.resets <= 0 or not growth.window_s > 0:
        return ""
    if math.isfinite(growth.steps_per_s) and growth.steps_per_s > 0:
        return f" (resets every ~{growth.window_s * growth.steps_per_s / growth.resets:,.0f} steps)"
    return f" (resets every ~{units.format_duration(growth.window_s / growth.resets)})"


def _sawtooth(growth: Growth, rate: float, name: str) -> Verdict | None:
    """A signal that keeps dropping back is judged by its troughs, not its slope."""
    floor, (lo, hi) = growth.floor_per_s, growth.floor_ci95
    if growth.resets < MIN_RESETS or not (
        math.isfinite(floor) and math.isfinite(lo) and math.isfinite(hi)
    ):
        return None
    moves = _rate(growth, floor, "s")
    if hi < rate:
        period = _period(growth)
        return Verdict(
            Label.NO_LEAK,
            [
                f"{name} rises and falls back {growth.resets} times{period} to a floor that moves "
                f"{moves}: bounded, memory is released periodically (a sawtooth), not leaked."
            ],
            growth.signal,
        )
    if math.isfinite(lo) and lo > 0 and floor >= rate:
        interval = units.format_interval(_rate(growth, lo, "s"), _rate(growth, hi, "s"))
        return Verdict(
            Label.LEAK,
            [
                f"{name} falls back {growth.resets} times, but the floor it returns to rises "
                f"{moves} (95% CI {interval}): a leak under a periodic clear."
            ],
            growth.signal,
        )
    more = _more_time(growth, rate - max(floor, 0.0) if floor < rate else floor, growth.floor_ci95)
    return Verdict(
        Label.INCONCLUSIVE,
        [
            f"{name} falls back {growth.resets} times to a floor that moves {moves}; too few "
            f"cycles to tell that from the {_threshold_text(growth, rate)} threshold."
        ],
        growth.signal,
        more if math.isfinite(more) else growth.window_s,
    )


def _wander(growth: Growth, name: str) -> Verdict | None:
    """Process memory that moves up and down without a trend: no significant slope, and no
    new high in the last third of the run above the highest point before it. A leak,
    however noisy, keeps setting new highs; a stationary wander (arenas and thread stacks
    coming and going) sets them ever more rarely."""
    lo, hi = growth.ci95_per_step if all(map(math.isfinite, growth.ci95_per_step)) else growth.ci95
    if growth.signal not in PROCESS_SIGNALS or not (lo <= 0 < hi):
        return None
    if not math.isfinite(growth.tail_above_head) or growth.tail_above_head > 0:
        return None
    return Verdict(
        Label.NO_LEAK,
        [
            f"{name} wanders within {units.format_size(growth.span)} without a trend "
            f"(slope {_rate(growth, growth.per_s, 's')}, its interval includes zero) and set no "
            "new high in the last third of the run: bounded, not leaking."
        ],
        growth.signal,
    )


#: The count after collections keeping at most this share of the raw rise: mostly garbage.
GARBAGE_SHARE = 0.25
#: ... and below this many times the threshold: too small to tell from warm-up in one run.
SMALL_LIVE = 4.0


def garbage(growth: Growth, thresholds: Thresholds) -> str | None:
    """How much of a rise in blocks was cyclic garbage waiting for the collector:
    ``"all"`` when the count after full collections did not grow materially, ``"most"``
    when it kept a small part (under four times the threshold and at most a quarter of the
    raw rise, which warm-up alone can explain), None otherwise."""
    settled, raw = growth.settled_per_step, growth.raw_per_step
    floor = thresholds.min_blocks_per_step
    if (
        growth.unit != "blocks"
        or not (math.isfinite(settled) and math.isfinite(raw))
        or raw < floor
    ):
        return None  # no rise to explain
    if settled < floor:
        return "all"
    if settled < SMALL_LIVE * floor and settled <= GARBAGE_SHARE * raw:
        return "most"
    return None


def judge(growth: Growth, thresholds: Thresholds, interval_s: float = math.nan) -> Verdict:
    """The verdict of one signal."""
    verdict = _judge(growth, thresholds, interval_s)
    if verdict.label not in (Label.LEAK, Label.INCONCLUSIVE) or growth.unit != "blocks":
        return verdict
    name = NAMES.get(growth.signal, growth.signal)
    settled = growth.settled_per_step
    after = (
        f"{name} moved {_rate(growth, growth.per_step)}, but after full collections the count "
        f"moved {_rate(growth, settled)} from the start of the window to its end"
    )
    if math.isfinite(settled) and settled < thresholds.min_blocks_per_step:
        # Two exact counts of what was alive: what rose and fell between them was garbage.
        return Verdict(
            Label.NO_LEAK,
            [f"{after}: what moved was garbage waiting for the collector."],
            growth.signal,
        )
    if verdict.label == Label.LEAK and garbage(growth, thresholds) == "most":
        return Verdict(
            Label.INCONCLUSIVE,
            [
                f"{after}: most of the rise was garbage waiting for the collector, and what "
                "stayed is too little to tell from warm-up in one run."
            ],
            growth.signal,
            growth.window_s,
        )
    return verdict


def _by_steps(growth: Growth) -> bool:
    """Where steps are known the per-step slope decides: it is exact however unevenly the
    steps fell in time (bursts, a pause while the run stops), where the per-second one is not."""
    return (
        math.isfinite(growth.per_step)
        and all(map(math.isfinite, growth.ci95_per_step))
        and math.isfinite(growth.steps_per_s)
        and growth.steps_per_s > 0
    )


@dataclass(frozen=True)
class _Slopes:
    """The slopes a verdict compares, all per step or all per second (``per``), with the
    threshold in the same unit."""

    per: str
    whole: float
    rate: float
    head: float
    head_lo: float
    tail: float
    tail_lo: float
    tail_hi: float


def _slopes(growth: Growth, rate: float) -> _Slopes:
    """Per step when the whole window, its head and its tail all have per-step slopes, else per
    second."""
    if (
        _by_steps(growth)
        and math.isfinite(growth.tail_per_step)
        and math.isfinite(growth.head_per_step)
    ):
        return _Slopes(
            "step",
            growth.per_step,
            rate / growth.steps_per_s,
            growth.head_per_step,
            growth.head_ci95_per_step[0],
            growth.tail_per_step,
            *growth.tail_ci95_per_step,
        )
    tail = growth.tail_per_s
    if math.isfinite(growth.per_step) and not math.isfinite(growth.tail_per_step):
        # Steps are known but the last third had none: memory that did not move while no
        # work was done says nothing about whether the work leaks.
        tail = math.nan
    return _Slopes(
        "s", growth.per_s, rate, growth.head_per_s, growth.head_ci95[0], tail, *growth.tail_ci95
    )


def _too_few(growth: Growth, thresholds: Thresholds, interval_s: float, name: str) -> Verdict:
    missing = thresholds.min_samples - growth.n_samples
    step = interval_s if math.isfinite(interval_s) and interval_s > 0 else 0.5
    samples = f"{growth.n_samples} sample{'' if growth.n_samples == 1 else 's'}"
    return Verdict(
        Label.INCONCLUSIVE,
        [
            f"{name}: only {samples} after the warm-up; at least "
            f"{thresholds.min_samples} are needed for a trend."
        ],
        growth.signal,
        max(missing, 1) * step,
    )


def _tail_sees_steps(growth: Growth, rise_per_s: float) -> bool:
    """A slow leak climbs in allocator steps: a tail shorter than two steps may sit flat.
    Only a staircase (process memory that rises in jumps and seldom falls) has such steps;
    memory that falls as far as it rises wanders, and block counts move by single objects."""
    staircase = (
        growth.signal in PROCESS_SIGNALS
        and math.isfinite(growth.max_jump)
        and growth.max_jump > 0
        and not (math.isfinite(growth.max_fall) and growth.max_fall >= growth.max_jump / 2)
    )
    return not staircase or rise_per_s * growth.window_s * TAIL_FRACTION >= 2 * growth.max_jump


def _bounded(growth: Growth, s: _Slopes, head_grew: bool, name: str) -> Verdict:
    """A signal that moved within a span and set no new high in its tail: bounded (PLATEAU
    when it grew before the tail, else NO_LEAK)."""
    span = (
        units.format_size(growth.span) if growth.unit == "bytes" else f"{growth.span:,.0f} blocks"
    )
    return Verdict(
        Label.PLATEAU if head_grew else Label.NO_LEAK,
        [
            f"{name} moved within {span} and set no new high in the last third of the run (it "
            f"moved {_rate(growth, s.tail, s.per)} there): bounded, a cache filling or "
            "allocator wander, not a steady leak."
        ],
        growth.signal,
    )


def _rose(
    growth: Growth,
    thresholds: Thresholds,
    s: _Slopes,
    significant: bool,
    head_grew: bool,
    what: str,
    interval_s: float,
) -> Verdict | None:
    """The verdict of a signal that grew over the window or before its tail: whether the
    tail kept growing (LEAK), stopped (PLATEAU) or cannot tell; None when it has no tail
    to go on and the whole window's growth is not significant."""
    name = NAMES.get(growth.signal, growth.signal)
    rise = max(s.whole, s.head) if math.isfinite(s.head) else s.whole
    tail_sees_steps = _tail_sees_steps(
        growth, rise * growth.steps_per_s if s.per == "step" else rise
    )
    if not math.isfinite(s.tail):
        return (
            Verdict(Label.LEAK, [f"{name} grows {what}, to the end of the run."], growth.signal)
            if significant
            else None
        )
    stopped = s.tail < thresholds.plateau_ratio * rise and tail_sees_steps
    if stopped and s.tail_hi < rise:
        return Verdict(
            Label.PLATEAU,
            [
                f"{name} rose ({_rate(growth, rise, s.per)} before the last third of the run), "
                f"then stopped: over the last third it moved {_rate(growth, s.tail, s.per)} "
                "(a cache or pool filling to its bound, or a long warm-up)."
            ],
            growth.signal,
        )
    if significant and (s.tail_lo > 0 or not tail_sees_steps):
        return Verdict(
            Label.LEAK, [f"{name} grows {what}, steadily to the end of the run."], growth.signal
        )
    if stopped and math.isfinite(growth.tail_above_head) and growth.tail_above_head <= 0:
        return _bounded(growth, s, head_grew, name)
    tail = units.format_interval(_rate(growth, s.tail_lo, s.per), _rate(growth, s.tail_hi, s.per))
    return Verdict(
        Label.INCONCLUSIVE,
        [
            f"{name} grows {what}, but the last third of the run does not confirm it "
            f"({_rate(growth, s.tail, s.per)}, interval {tail}); run longer to tell a "
            "leak from a bound."
        ],
        growth.signal,
        max(growth.window_s, interval_s if math.isfinite(interval_s) else 0.0),
    )


def _judge(growth: Growth, thresholds: Thresholds, interval_s: float = math.nan) -> Verdict:
    name = NAMES.get(growth.signal, growth.signal)
    if growth.n_samples < thresholds.min_samples or not math.isfinite(growth.per_s):
        return _too_few(growth, thresholds, interval_s, name)
    rate = thresholds.material_rate(growth)
    what = _describe(growth)
    sawtooth = _sawtooth(growth, rate, name)
    if sawtooth is not None:
        return sawtooth
    if _by_steps(growth):
        value, (lo, hi), limit = growth.per_step, growth.ci95_per_step, rate / growth.steps_per_s
    else:
        value, (lo, hi), limit = growth.per_s, growth.ci95, rate
    if hi < limit:
        return Verdict(
            Label.NO_LEAK,
            [
                f"{name} grows {what}; the interval stays below the "
                f"{_threshold_text(growth, rate)} threshold."
            ],
            growth.signal,
        )
    significant = lo > 0 and value >= limit
    s = _slopes(growth, rate)
    head_grew = math.isfinite(s.head) and s.head_lo > 0 and s.head >= s.rate
    if significant or head_grew:
        rose = _rose(growth, thresholds, s, significant, head_grew, what, interval_s)
        if rose is not None:
            return rose
    wander = _wander(growth, name)
    if wander is not None:
        return wander
    b = growth.per_s
    more = _more_time(growth, b if b >= rate else rate - max(b, 0.0))
    return Verdict(
        Label.INCONCLUSIVE,
        [
            f"{name} grows {what}: the interval is too wide to tell it from the "
            f"{_threshold_text(growth, rate)} threshold."
        ],
        growth.signal,
        more if math.isfinite(more) else None,
    )


def _representative(signals: list[str], per_signal: dict[str, Verdict]) -> str | None:
    """The signal that speaks for its family: a leak if any shows one, else the first
    decisive one (RSS before USS, traced before blocks), else the first."""
    if not signals:
        return None
    for s in signals:
        if per_signal[s].label == Label.LEAK:
            return s
    for s in signals:
        if per_signal[s].label != Label.INCONCLUSIVE:
            return s
    return signals[0]


@dataclass(frozen=True)
class _Signals:
    """What a combined verdict weighs: each signal's growth and verdict, and the process and
    heap signals it rests on (None where the run has none)."""

    growth: dict[str, Growth]
    per_signal: dict[str, Verdict]
    proc: str | None
    heap: str | None

    @property
    def p_label(self) -> str | None:
        return self.per_signal[self.proc].label if self.proc else None

    @property
    def h_label(self) -> str | None:
        return self.per_signal[self.heap].label if self.heap else None


def _measured(
    growth: dict[str, Growth], per_signal: dict[str, Verdict], thresholds: Thresholds
) -> dict[str, Verdict]:
    """The verdicts of the signals read often enough for a trend (all of them when none is)."""
    # A signal read too seldom for a trend (allocated blocks on a large heap are read on a
    # budget) does not hold back the verdict of the others.
    measured = {
        s: v
        for s, v in per_signal.items()
        if s in growth and growth[s].n_samples >= thresholds.min_samples
    }
    return measured if measured and len(measured) < len(per_signal) else per_signal


def _garbage_growth(sig: _Signals) -> Verdict:
    """The process grew while only the raw block count did: garbage not yet collected."""
    assert sig.proc is not None and sig.heap is not None
    g = sig.growth[sig.heap]
    return Verdict(
        Label.INCONCLUSIVE,
        [
            sig.per_signal[sig.proc].reasons[0],
            f"But Python objects after full collections moved {_rate(g, g.settled_per_step)} "
            f"while the raw count rose {_rate(g, g.raw_per_step)}: the process grew with "
            "garbage the collector had not reached yet, which a longer run tells from a leak.",
        ],
        sig.proc,
        sig.growth[sig.proc].window_s,
    )


def _process_leak(sig: _Signals) -> Verdict:
    """The process memory leaks; the heap signal says whether Python objects hold it."""
    assert sig.proc is not None
    heap, h_label = sig.heap, sig.h_label
    reasons = [sig.per_signal[sig.proc].reasons[0]]
    if heap and h_label == Label.LEAK:
        reasons.append(
            f"{NAMES[heap]} grow too ({_describe(sig.growth[heap])}): Python objects are "
            "being retained."
        )
    elif heap:
        how = "do not grow" if h_label == Label.NO_LEAK else "show no steady growth"
        reasons.append(
            f"{NAMES[heap]} {how}: the memory is held outside Python objects "
            "(a C extension, native buffers) or lost to allocator fragmentation."
        )
    return Verdict(Label.LEAK, reasons, sig.proc)


def _heap_leak(sig: _Signals) -> Verdict:
    """Python objects leak while the process memory does not show it (yet)."""
    assert sig.heap is not None
    proc, p_label = sig.proc, sig.p_label
    reasons = [sig.per_signal[sig.heap].reasons[0]]
    if proc:
        reasons.append(
            f"{NAMES[proc]} does not show it yet "
            f"({p_label.lower().replace('_', ' ') if p_label else 'n/a'}): the objects fill "
            "memory the allocator already held, or the process noise hides them."
        )
    return Verdict(Label.LEAK, reasons, sig.heap)


def _plateau(sig: _Signals) -> Verdict:
    """A signal rose and stopped; the process one is named first."""
    main = sig.proc if sig.p_label == Label.PLATEAU else sig.heap
    assert main is not None
    reasons = [sig.per_signal[main].reasons[0]]
    if main == sig.proc and sig.heap and sig.h_label != Label.PLATEAU:
        reasons.append(
            f"{NAMES[sig.heap]} show no such rise: it is in native memory or allocator "
            "fragmentation, not Python objects."
        )
    return Verdict(Label.PLATEAU, reasons, main)


def _unsure(sig: _Signals) -> Verdict | None:
    """INCONCLUSIVE when a signal cannot tell yet, with how much longer to run; else None."""
    per_signal = sig.per_signal
    unsure = [s for s in (sig.proc, sig.heap) if s and per_signal[s].label == Label.INCONCLUSIVE]
    if not unsure:
        return None
    times = [per_signal[s].more_time_s for s in unsure if per_signal[s].more_time_s is not None]
    more = max(times) if times else None
    main = unsure[0]
    reasons = [per_signal[main].reasons[0]]
    if more is not None:
        reasons.append(f"Run about {units.format_duration(more)} longer for a confident verdict.")
    return Verdict(Label.INCONCLUSIVE, reasons, main, more)


def combine(
    growth: dict[str, Growth], per_signal: dict[str, Verdict], thresholds: Thresholds | None = None
) -> Verdict:
    """One verdict over all signals, naming the one it rests on."""
    if not per_signal:
        return Verdict(
            Label.INCONCLUSIVE, ["No memory signal has samples after the warm-up."], "", None
        )
    thresholds = thresholds or Thresholds()
    per_signal = _measured(growth, per_signal, thresholds)
    proc = _representative([s for s in PROCESS_SIGNALS if s in per_signal], per_signal)
    heap = _representative([s for s in HEAP_SIGNALS if s in per_signal], per_signal)
    sig = _Signals(growth, per_signal, proc, heap)
    p_label, h_label = sig.p_label, sig.h_label
    if (
        proc
        and p_label == Label.LEAK
        and heap == "blocks"
        and h_label != Label.LEAK
        and garbage(growth[heap], thresholds)
    ):
        return _garbage_growth(sig)
    if proc and p_label == Label.LEAK:
        return _process_leak(sig)
    if heap and h_label == Label.LEAK:
        return _heap_leak(sig)
    if Label.PLATEAU in (p_label, h_label):
        return _plateau(sig)
    unsure = _unsure(sig)
    if unsure is not None:
        return unsure
    main = proc or heap
    assert main is not None
    reasons = [per_signal[main].reasons[0]]
    if heap and main != heap:
        reasons.append(f"{NAMES[heap]} do not grow either.")
    return Verdict(Label.NO_LEAK, reasons, main)
