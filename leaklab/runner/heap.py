"""Cheap memory readings: a process's RSS (the child's own, and its children's for the parent)
and, in the child, the Python heap as it stands after a full collection.

Allocated blocks count cyclic garbage until the collector frees it, so a step that
builds and drops reference cycles makes the count swing with the collector, which
reads as growth over a short run. :class:`CollectedHeap` records the count right
after every full (generation 2) collection, the ones the interpreter runs by itself
(through ``gc.callbacks``) and ones the step loop forces at sample points while
their measured cost stays within a budget of the run's time. Reading the count is
O(1); a forced collection is O(heap), which is why it is budgeted rather than
done at every sample.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcessRss:
    """A process's resident set size (this one's by default), read from ``/proc/PID/statm``
    kept open: one ``pread`` per reading, where opening and parsing it anew costs ten times more.
    """

    def __init__(self, pid: int | None = None) -> None:
        try:
            self._fd: int | None = os.open(
                "/proc/self/statm" if pid is None else f"/proc/{pid}/statm", os.O_RDONLY
            )
        except OSError:
            self._fd = None

    @property
    def available(self) -> bool:
        """Whether the file could be opened (no ``/proc`` here, or the process was gone)."""
        return self._fd is not None

    def read(self) -> int | None:
        """The RSS in bytes; None once the process is gone (a zombie's statm reads all zeros)."""
        if self._fd is None:
            return None
        try:
            fields = os.pread(self._fd, 128, 0).split()
            if int(fields[0]) == 0:
                return None
            return int(fields[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class BlockCounter:
    """``sys.getallocatedblocks()`` on a time budget.

    The count walks the allocator's arenas, so on a large heap reading it at every sample
    of a fast step would cost more than the step. It is read while the time spent reading
    stays within ``budget`` of the elapsed time, and always when ``force`` is set (the first
    and last samples) or a read costs no more than ``CHEAP_S``.

    A read is charged what the walk costs, not what the clock saw: the cost per block is
    the lowest seen so far, times the blocks counted. On a busy machine a read that was
    preempted would otherwise look a thousand times dearer and stop every read after it
    for seconds, leaving a short run without its blocks signal.
    """

    CHEAP_S = 20e-6

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.spent_s = 0.0
        self.cost_s = 0.0  # the latest read's charged cost
        self.reads = 0
        self.skipped = 0
        self._s_per_block = float("inf")
        self._started = time.monotonic()

    def read(self, force: bool = False) -> int | None:
        over = self.spent_s + self.cost_s > self.budget * (time.monotonic() - self._started)
        if not force and self.cost_s > self.CHEAP_S and over:
            self.skipped += 1
            return None
        started = time.perf_counter()
        value = sys.getallocatedblocks()
        self.charge(time.perf_counter() - started, value)
        return value

    def charge(self, took_s: float, blocks: int) -> None:
        """Account for one read that took ``took_s`` by the clock and counted ``blocks``."""
        self._s_per_block = min(self._s_per_block, took_s / max(blocks, 1))
        self.cost_s = blocks * self._s_per_block
        self.spent_s += self.cost_s
        self.reads += 1


class CollectedHeap:
    """Allocated blocks after the latest full collection, forced ones on a time budget.

    ``budget`` is the share of the elapsed time that forced collections may take;
    ``spacing_s`` and ``spacing_steps`` (either may be None) say how often one is
    wanted at all.
    """

    def __init__(self, budget: float, spacing_s: float | None, spacing_steps: int | None) -> None:
        self.budget = budget
        self.spacing_s = spacing_s
        self.spacing_steps = spacing_steps
        self.latest: int | None = None  # blocks after the latest full collection not yet reported
        self.forced = 0
        self.natural = 0
        self.spent_s = 0.0
        self.cost_s = 0.0  # what the latest forced collection took
        self._last_at = -float("inf")
        self._last_steps = 0
        self._started = time.monotonic()
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self.latest = sys.getallocatedblocks()
            self.natural += 1

    def collect(self) -> None:
        """Force a full collection now (its callback records the count)."""
        started = time.perf_counter()
        gc.collect()
        self.cost_s = time.perf_counter() - started
        self.spent_s += self.cost_s
        self.forced += 1
        self.natural -= 1  # the callback counted it as the interpreter's own
        self._last_at = time.monotonic()

    def maybe_collect(self, steps: int) -> None:
        """Force a collection when one is wanted and the budget allows it."""
        if not gc.isenabled():
            return
        now = time.monotonic()
        due = (
            self.spacing_s is not None
            and now - self._last_at >= self.spacing_s
            or self.spacing_steps is not None
            and steps - self._last_steps >= self.spacing_steps
        )
        if not due:
            return
        if self.spent_s + self.cost_s > self.budget * (now - self._started):
            return
        self._last_steps = steps
        self.collect()

    def take(self) -> int | None:
        """The count after the latest full collection since the last call, if any."""
        value, self.latest = self.latest, None
        return value

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def summary(self) -> dict[str, Any]:
        return {"forced": self.forced, "natural": self.natural, "forced_s": round(self.spent_s, 6)}
