"""Synthetic runs with known growth, for checking the analysis against the truth.

A :class:`Case` says what the memory really does (retain so many bytes and blocks
per step, fill a cache to a bound, clear a structure periodically, churn random
sizes, leak natively); :class:`Noise` adds what real runs show on top of it:

* allocator steps: RSS follows the retained bytes in whole chunks (arenas, heap growth);
* the high-water mark: freed memory is usually kept by the allocator, so RSS only
  falls when a case says memory goes back to the system;
* GC sawtooth: cyclic garbage that piles up and is collected every few seconds;
* slow autocorrelated wander (other threads, caches of the interpreter), jitter;
* outliers: a temporary buffer in flight at the moment of a sample;
* sampling jitter and an uneven step rate.

:func:`write_run` records a case through :class:`leaklab.store.RunWriter`, exactly as
the runner would, so the analysis reads it from disk like any other run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from leaklab import store


@dataclass(frozen=True)
class Noise:
    base_rss: float = 30e6
    shared: float = 8e6  # rss - uss
    base_blocks: float = 90_000
    chunk: float = 64 * 1024  # RSS grows in whole chunks of this size
    jitter: float = 16e3  # white noise on RSS, bytes (sd)
    wander: float = 30e3  # AR(1) wander on RSS, bytes (stationary sd)
    wander_phi: float = 0.95  # AR(1) coefficient per sample
    spike_prob: float = 0.02  # chance a sample catches a temporary buffer
    spike_size: tuple[float, float] = (1e6, 8e6)
    gc_period_s: float = 5.0  # cyclic garbage collected this often
    gc_blocks_per_step: float = 0.5
    gc_bytes_per_block: float = 64.0
    blocks_jitter: float = 30.0
    interval_jitter: float = 0.05  # relative
    rate_jitter: float = 0.1  # relative, per interval


QUIET = Noise(
    jitter=0.0,
    wander=0.0,
    spike_prob=0.0,
    chunk=4096,
    gc_blocks_per_step=0.0,
    blocks_jitter=0.0,
    interval_jitter=0.0,
    rate_jitter=0.0,
)


@dataclass(frozen=True)
class Case:
    """What memory really does, per step; ``expected`` lists the right verdicts."""

    name: str
    bytes_per_step: float = 0.0  # retained, seen by RSS/USS
    blocks_per_step: float = 0.0  # retained, seen by allocated blocks
    bound_bytes: float | None = None  # retention stops here (a cache filling to its bound)
    clear_every_s: float | None = None  # the retained structure is cleared this often (sawtooth)
    returns_memory: bool = False  # a clear gives memory back to the system (large buffers)
    churn_bytes: float = 0.0  # random-size allocations: the high-water keeps finding new records
    fragmentation_bytes: float = 0.0  # RSS rises this much over the first half, blocks flat
    rate: float = 200.0
    duration_s: float = 60.0
    interval_s: float = 0.5
    warmup_fraction: float = 0.1
    expected: tuple[str, ...] = ("NO_LEAK",)
    noise: Noise = field(default_factory=Noise)

    @property
    def true_bytes_per_step(self) -> float:
        """The long-run growth per step (0 for bounded cases)."""
        bounded = self.bound_bytes is not None or self.clear_every_s is not None
        return 0.0 if bounded else self.bytes_per_step

    @property
    def true_blocks_per_step(self) -> float:
        bounded = self.bound_bytes is not None or self.clear_every_s is not None
        return 0.0 if bounded else self.blocks_per_step


def _retained(case: Case, steps: np.ndarray, t_step: np.ndarray, per_step: float) -> np.ndarray:
    if case.clear_every_s:
        # Steps since the last clear: the structure empties every clear_every_s seconds.
        cycle_start = np.floor(t_step / case.clear_every_s) * case.clear_every_s
        steps_since = np.maximum(steps - np.interp(cycle_start, t_step, steps), 0)
        return per_step * steps_since
    amount = per_step * steps
    if case.bound_bytes is not None and case.bytes_per_step:
        amount = np.minimum(amount, case.bound_bytes * per_step / case.bytes_per_step)
    return amount


def generate(
    case: Case, seed: int = 0
) -> tuple[dict[str, Any], dict[str, list[float]], list[dict[str, Any]]]:
    """``(meta, columns, events)`` of a synthetic run of ``case``."""
    rng = np.random.default_rng(seed)
    noise = case.noise
    setup_s = 0.3
    n = int(case.duration_s / case.interval_s) + 1
    gaps = case.interval_s * (1 + noise.interval_jitter * rng.uniform(-1, 1, n))
    t = np.cumsum(gaps) - gaps[0] + 0.05
    stepping = t >= setup_s
    dt = np.diff(t, prepend=t[0])
    increments = np.where(
        stepping,
        case.rate * dt * np.clip(1 + noise.rate_jitter * rng.standard_normal(n), 0.2, None),
        0,
    )
    steps = np.floor(np.cumsum(increments))
    t_step = np.clip(t - setup_s, 0, None)

    kept = _retained(case, steps, t_step, case.bytes_per_step)
    kept_blocks = _retained(case, steps, t_step, case.blocks_per_step)
    held = kept if case.returns_memory else np.maximum.accumulate(kept)
    # Cyclic garbage: piles up between collections; its memory is reused, so RSS keeps its peak.
    phase = np.mod(t_step, noise.gc_period_s) / noise.gc_period_s
    garbage_blocks = noise.gc_blocks_per_step * case.rate * noise.gc_period_s * phase
    garbage_peak = (
        noise.gc_blocks_per_step * case.rate * noise.gc_period_s * noise.gc_bytes_per_block
    )
    churn = np.zeros(n)
    if case.churn_bytes:
        # The heap's high-water mark under random sizes: most of it in the first seconds, then
        # new records at a rate ~1/t, each smaller (the maximum of a bounded size converges).
        since = np.maximum(t_step, case.interval_s)
        record = rng.uniform(size=n) < np.minimum(1.0, case.interval_s / since)
        churn = np.cumsum(
            record * rng.uniform(0.1, 1.0, n) * case.churn_bytes / (2 * since)
        ) + case.churn_bytes * (1 - np.exp(-t_step / 2))
    frag = case.fragmentation_bytes * np.clip(t_step / (case.duration_s / 2), 0, 1)
    chunked = np.ceil((held + churn + frag) / noise.chunk) * noise.chunk
    wander = np.zeros(n)
    innovations = rng.standard_normal(n) * noise.wander * math.sqrt(1 - noise.wander_phi**2)
    for k in range(1, n):
        wander[k] = noise.wander_phi * wander[k - 1] + innovations[k]
    spikes = (rng.uniform(size=n) < noise.spike_prob) * rng.uniform(*noise.spike_size, n)
    rss = (
        noise.base_rss
        + chunked
        + np.minimum(garbage_peak, garbage_peak * t_step / noise.gc_period_s)
        + wander
        + noise.jitter * rng.standard_normal(n)
        + spikes
    )
    rss = np.round(rss / 4096) * 4096
    uss = rss - noise.shared + np.round(noise.jitter / 4 * rng.standard_normal(n) / 4096) * 4096
    blocks = np.round(
        noise.base_blocks
        + kept_blocks
        + garbage_blocks
        + noise.blocks_jitter * rng.standard_normal(n)
    )

    warmup_s = round(case.duration_s * case.warmup_fraction, 3)
    ready_t = float(t[stepping][0]) if stepping.any() else None
    warm_rows = np.flatnonzero(stepping & (t_step >= warmup_s))
    meta: dict[str, Any] = {
        "scenario": f"synthetic-{case.name}",
        "variant": None,
        "params": {"case": case.name, "seed": seed},
        "start": store.iso(store.utc_now()),
        "end": None,
        "status": "completed",
        "config": {
            "duration_s": case.duration_s,
            "steps": None,
            "rate": case.rate,
            "interval_s": case.interval_s,
            "warmup": {"seconds": warmup_s},
            "probes": [],
        },
        "duration_s": float(t[-1]),
    }
    events: list[dict[str, Any]] = [{"t": 0.0, "kind": "start", "pid": 1}]
    if ready_t is not None:
        events.append({"t": ready_t, "kind": "ready", "pid": 1, "is_async": False})
    if len(warm_rows):
        first = int(warm_rows[0])
        meta["warmup_end"] = {"t": float(t[first]), "steps": int(steps[first])}
        events.append({"t": float(t[first]), "kind": "warmup_end", "steps": int(steps[first])})
    events.append(
        {
            "t": float(t[-1]),
            "kind": "done",
            "reason": "completed",
            "steps": int(steps[-1]),
            "errors": 0,
        }
    )
    nan = math.nan
    columns = {
        "t": t.tolist(),
        "steps": np.where(stepping, steps, nan).tolist(),
        "rss": rss.tolist(),
        "uss": uss.tolist(),
        "allocated_blocks": blocks.tolist(),
        "gc_gen0": [nan] * n,
        "gc_gen1": [nan] * n,
        "gc_gen2": [nan] * n,
        "gc_collections": np.floor(t_step / noise.gc_period_s).tolist(),
        "errors": [0.0] * n,
        "pid": [1.0] * n,
        "generation": [0.0] * n,
    }
    return meta, columns, events


def write_run(case: Case, root: str | Path, seed: int = 0) -> Path:
    """Record ``case`` as a run directory under ``root`` with the store's writer."""
    meta, columns, events = generate(case, seed)
    path = store.new_run_dir(root, meta["scenario"], f"seed{seed}")
    names = list(columns)
    with store.RunWriter(path, meta, names) as writer:
        for row in zip(*(columns[c] for c in names), strict=True):
            writer.sample(dict(zip(names, row, strict=True)))
        for event in events:
            writer.event(**event)
        writer.update_meta(end=store.iso(store.utc_now()))
    return path


def as_run_data(case: Case, seed: int = 0) -> store.RunData:
    """The same run in memory, without touching the disk."""
    meta, columns, events = generate(case, seed)
    return store.RunData(
        path=Path(f"<synthetic {case.name} seed {seed}>"),
        meta={"schema_version": 1, **meta},
        columns=columns,
        events=events,
    )


#: The benchmark's cases (issue targets: 0, 64 B, 1 KB, 100 KB per step; a cache; a sawtooth;
#: random sizes without retention), plus a native leak and fragmentation.
CASES: tuple[Case, ...] = (
    Case("no-retention", expected=("NO_LEAK",)),
    Case("retain-64B", bytes_per_step=64, blocks_per_step=1, expected=("LEAK",)),
    Case("retain-1KB", bytes_per_step=1024, blocks_per_step=1, expected=("LEAK",)),
    Case("retain-100KB", bytes_per_step=100_000, blocks_per_step=1, expected=("LEAK",)),
    Case(
        "cache-fills",
        bytes_per_step=1024,
        blocks_per_step=1,
        bound_bytes=1024 * 200 * 25,
        expected=("PLATEAU",),
    ),
    Case(
        "sawtooth-4s",
        bytes_per_step=4096,
        blocks_per_step=1,
        clear_every_s=4,
        returns_memory=True,
        expected=("NO_LEAK", "PLATEAU"),
    ),
    Case(
        "sawtooth-8s",
        bytes_per_step=4096,
        blocks_per_step=1,
        clear_every_s=8,
        returns_memory=True,
        expected=("NO_LEAK", "PLATEAU"),
    ),
    Case(
        "sawtooth-4s-5min",
        bytes_per_step=4096,
        blocks_per_step=1,
        clear_every_s=4,
        returns_memory=True,
        duration_s=300,
        expected=("NO_LEAK", "PLATEAU"),
    ),
    Case("random-sizes", churn_bytes=2e6, expected=("NO_LEAK", "PLATEAU")),
    Case("native-1KB", bytes_per_step=1024, expected=("LEAK",)),
    Case("fragmentation", fragmentation_bytes=8e6, expected=("PLATEAU",)),
    Case(
        "fast-1KB-10s",
        bytes_per_step=1024,
        blocks_per_step=1,
        rate=500,
        duration_s=10,
        expected=("LEAK",),
    ),
)


def case(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(f"unknown case {name!r}; known cases: {', '.join(c.name for c in CASES)}")


__all__ = [
    "CASES",
    "QUIET",
    "Case",
    "Noise",
    "as_run_data",
    "case",
    "generate",
    "replace",
    "write_run",
]
