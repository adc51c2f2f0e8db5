"""Recycling on a memory limit (``leaklab run --recycle LIMIT``), modelled on PM2.

What PM2 does, and what this does the same way:

* ``max_memory_restart``: PM2's worker reads every process's memory every
  ``PM2_WORKER_INTERVAL`` (30 s by default) and restarts a process found above the
  limit. Here: :class:`CheckClock` fires every ``check_interval_s`` (30 s by
  default) on a fixed schedule, whatever the process does in between, so memory
  overshoots the limit by whatever it grows until the next check.
* Stopping a process: the ``kill_signal`` (SIGINT by default), then ``kill_timeout``
  (1.6 s by default) to exit, then SIGKILL (here: to its whole process group).
* Memory restarts come in two shapes, like PM2's fork and cluster modes
  (``max_memory_restart`` calls PM2's graceful reload, which only overlaps old and
  new processes in cluster mode):

  - ``restart`` (fork mode, the default): stop the old process, then start the
    new one; the service is down from the signal until the new one is healthy.
  - ``reload`` (cluster mode): start the new process, move the traffic to it once
    it answers ``/health``, then stop the old one, which finishes what it was doing.

* Crashes (the process exits on its own) are restarted with
  ``exp_backoff_restart_delay``: 0.1 s, then x1.5 after each consecutive crash, at
  most 15 s, back to the start once a process has stayed up 30 s (:class:`Backoff`).
  After ``max_restarts`` consecutive crashes (16 by default, PM2's default) the
  supervisor gives up and the run fails.

This module holds the policy and the bookkeeping; :mod:`leaklab.runner.parent`
owns the processes and asks it what to do.
"""

from __future__ import annotations

import math
import signal
from dataclasses import asdict, dataclass, field
from typing import Any

# PM2's defaults, which ours match (shared with the recycling model).
from leaklab.pm2_defaults import (
    MODES,
    PM2_CHECK_INTERVAL_S,
    PM2_KILL_SIGNAL,
    PM2_KILL_TIMEOUT_S,
    PM2_MAX_RESTARTS,
)

BACKOFF_INITIAL_S = 0.1
BACKOFF_FACTOR = 1.5
BACKOFF_MAX_S = 15.0
STABLE_AFTER_S = 30.0

SIGNAL_FORMS = (
    "a signal name or number: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2, SIGKILL (or INT, TERM, "
    "2, 15 ...)"
)


def parse_signal(text: str | int) -> signal.Signals:
    """``"SIGINT"``, ``"int"`` and ``2`` all name SIGINT; anything else raises ValueError."""
    raw = str(text).strip()
    try:
        if raw.isdigit():
            return signal.Signals(int(raw))
        name = raw.upper()
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise ValueError(f"not a signal: {text!r}; accepted forms: {SIGNAL_FORMS}") from None


@dataclass(frozen=True)
class RecyclePolicy:
    """When and how to recycle the child."""

    limit: int  # bytes of RSS
    check_interval_s: float = PM2_CHECK_INTERVAL_S
    kill_signal: str = PM2_KILL_SIGNAL
    kill_timeout_s: float = PM2_KILL_TIMEOUT_S
    max_restarts: int = PM2_MAX_RESTARTS  # consecutive crash restarts before giving up
    mode: str = "restart"
    backoff_initial_s: float = BACKOFF_INITIAL_S
    backoff_factor: float = BACKOFF_FACTOR
    backoff_max_s: float = BACKOFF_MAX_S
    stable_after_s: float = STABLE_AFTER_S
    health_timeout_s: float = 30.0  # a generation that never answers /health counts as a crash

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"the recycle limit must be a positive size, got {self.limit}")
        if not self.check_interval_s > 0:
            raise ValueError(f"the check interval must be positive, got {self.check_interval_s}")
        if self.kill_timeout_s < 0:
            raise ValueError(f"the kill timeout must not be negative, got {self.kill_timeout_s}")
        if self.mode not in MODES:
            raise ValueError(f"unknown restart mode {self.mode!r}; known modes: {', '.join(MODES)}")
        parse_signal(self.kill_signal)

    @property
    def signal(self) -> signal.Signals:
        return parse_signal(self.kill_signal)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kill_signal"] = self.signal.name
        return data


class Backoff:
    """PM2's ``exp_backoff_restart_delay``: the delay before restarting a crashed process.

    >>> b = Backoff()
    >>> [round(b.next_delay(), 3) for _ in range(4)]
    [0.1, 0.15, 0.225, 0.338]
    >>> b.note_uptime(31.0); b.next_delay()
    0.1
    """

    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        factor: float = BACKOFF_FACTOR,
        maximum_s: float = BACKOFF_MAX_S,
        stable_after_s: float = STABLE_AFTER_S,
    ) -> None:
        self.initial_s = initial_s
        self.factor = factor
        self.maximum_s = maximum_s
        self.stable_after_s = stable_after_s
        self.consecutive = 0  # crashes since the last stable process

    def note_uptime(self, uptime_s: float) -> None:
        """A process that stayed up long enough starts the sequence over."""
        if uptime_s >= self.stable_after_s:
            self.consecutive = 0

    def next_delay(self) -> float:
        self.consecutive += 1
        return min(self.maximum_s, self.initial_s * self.factor ** (self.consecutive - 1))


class CheckClock:
    """A fixed schedule (``start + k * interval``), like PM2's ``setInterval`` worker:
    a slow check never shifts the ones after it, and missed ticks are skipped."""

    def __init__(self, interval_s: float, start: float = 0.0) -> None:
        self.interval_s = interval_s
        self.next_at = start + interval_s

    def due(self, now: float) -> bool:
        if now < self.next_at:
            return False
        missed = math.floor((now - self.next_at) / self.interval_s)
        self.next_at += (missed + 1) * self.interval_s
        return True


@dataclass
class Restart:
    """One restart, written to ``events.jsonl`` as a ``restart`` event once it is over."""

    t: float  # when it was triggered (seconds since the run started)
    reason: str  # "memory" or "crash"
    generation: int  # the generation it replaced
    rss: int | None = None  # RSS at the trigger (memory restarts)
    limit: int | None = None
    mode: str = "restart"
    signal: str | None = None
    backoff_s: float | None = None  # crash restarts: the delay before starting again
    returncode: int | None = None  # crash restarts: how the old process ended
    error: str | None = None  # crash restarts: what the scenario raised, if it said
    new_generation: int | None = None
    stopped_after_s: float | None = None  # from the trigger until the old process was gone
    killed: bool = False  # the old process needed SIGKILL after the kill timeout
    healthy_after_s: float | None = None  # from the trigger until the new process answered /health
    extra: dict[str, Any] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data.pop("t")
        return {**{k: v for k, v in data.items() if v is not None}, **extra}


class CrashLimit(Exception):
    """Too many consecutive crashes: the supervisor gives up."""


class Supervisor:
    """Decisions and bookkeeping of one recycled run (no processes here)."""

    def __init__(self, policy: RecyclePolicy) -> None:
        self.policy = policy
        self.clock = CheckClock(policy.check_interval_s)
        self.backoff = Backoff(
            policy.backoff_initial_s,
            policy.backoff_factor,
            policy.backoff_max_s,
            policy.stable_after_s,
        )
        self.pending: Restart | None = None  # the restart in progress
        self.spawn_at: float | None = None  # a crash restart waiting out its backoff
        self.restarts: list[Restart] = []
        self.delays: list[float] = []

    def check_due(self, now: float) -> bool:
        return self.clock.due(now)

    def over_limit(self, rss: int | None) -> bool:
        return rss is not None and rss > self.policy.limit

    def memory_restart(self, now: float, generation: int, rss: int) -> Restart:
        self.pending = Restart(
            t=now,
            reason="memory",
            generation=generation,
            rss=rss,
            limit=self.policy.limit,
            mode=self.policy.mode,
            signal=self.policy.signal.name,
        )
        return self.pending

    def crash_restart(
        self,
        now: float,
        generation: int,
        uptime_s: float,
        returncode: int | None,
        error: str | None,
    ) -> Restart:
        """Schedule the restart of a crashed process; raises :class:`CrashLimit` past
        ``max_restarts``."""
        self.backoff.note_uptime(uptime_s)
        if self.backoff.consecutive >= self.policy.max_restarts:
            raise CrashLimit(self._give_up_message(returncode, error))
        delay = self.backoff.next_delay()
        self.delays.append(delay)
        self.spawn_at = now + delay
        self.pending = Restart(
            t=now,
            reason="crash",
            generation=generation,
            mode="restart",
            backoff_s=round(delay, 6),
            returncode=returncode,
            error=error,
            stopped_after_s=0.0,
        )
        return self.pending

    def spawn_due(self, now: float) -> bool:
        if self.spawn_at is not None and now >= self.spawn_at:
            self.spawn_at = None
            return True
        return False

    def finish_pending(self, now: float, healthy: bool) -> Restart | None:
        """The new generation answered (or never will): the restart is over."""
        restart, self.pending = self.pending, None
        if restart is None:
            return None
        if healthy:
            restart.healthy_after_s = round(now - restart.t, 6)
        self.restarts.append(restart)
        return restart

    def _give_up_message(self, returncode: int | None, error: str | None) -> str:
        crashes = self.backoff.consecutive + 1
        delays = ", ".join(f"{d:g}s" for d in self.delays[-self.policy.max_restarts :]) or "none"
        last = error or (f"exit code {returncode}" if returncode is not None else "no exit status")
        return (
            f"the child crashed {crashes} times in a row (last: {last}); gave up after "
            f"{self.policy.max_restarts} restarts with backoff ({delays}). "
            "See artifacts/child-stderr.log and events.jsonl"
        )
