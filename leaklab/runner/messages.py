"""What the parent does with each message a generation sends (:class:`MessageHandlers`).

A message is a dict with a ``type``; :meth:`MessageHandlers.message_handlers` maps each
type to a handler ``(generation, message) -> None``. A subclass adds types or overrides a
handler (the command runner's generations say ``tick`` and ``inprocess`` too).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from leaklab.kinds import EventKind, Status
from leaklab.runner import load as load_mod
from leaklab.runner.generation import Generation

if TYPE_CHECKING:
    from leaklab.runner.session import Session

Handler = Callable[[Generation, dict[str, Any]], None]


class MessageType(str, Enum):
    """The ``type`` of a message on the run's queue."""

    HELLO = "hello"  # setup is done (a service also names its port)
    HEALTHY = "healthy"  # a health check's result (from the parent's own poller)
    SAMPLE = "sample"  # the child's counters; ``ack``: its final one
    EVENT = "event"  # anything else, written to events.jsonl as it is
    DONE = "done"  # the steps are over: how and why
    # command runs (leaklab.runner.command)
    TICK = "tick"
    INPROCESS = "inprocess"
    NOT_LISTENING = "not_listening"


class MessageHandlers:
    """The handlers of :class:`~leaklab.runner.session.Session` (a mixin: ``self`` is the
    session)."""

    def message_handlers(self: Session) -> dict[str, Handler]:
        """Message type -> handler (a hook: extend it to handle more types)."""
        return {
            MessageType.SAMPLE: self.handle_sample,
            MessageType.HELLO: self.handle_hello,
            MessageType.HEALTHY: self.handle_health,
            MessageType.EVENT: self.handle_event,
            MessageType.DONE: self.handle_done,
        }

    def dispatch(self: Session, gen: Generation, message: dict[str, Any]) -> None:
        handler = self.handlers.get(str(message.get("type")))
        if handler is not None:
            handler(gen, message)

    def handle_sample(self: Session, gen: Generation, message: dict[str, Any]) -> None:
        if gen is self.current:
            self.write_sample(gen, message)
        else:
            gen.steps = int(message.get("steps", gen.steps))
            gen.errors = int(message.get("errors", gen.errors))
        if message.get("ack"):
            gen.ack()
            gen.finishing = True

    def handle_hello(self: Session, gen: Generation, message: dict[str, Any]) -> None:
        gen.t_ready = self.now()
        gen.port = message.get("port")
        fields = {"port": gen.port} if gen.port is not None else {}
        self.writer.event(
            EventKind.READY,
            message.get("t"),
            pid=message.get("pid"),
            is_async=message.get("is_async"),
            **fields,
            **self.tag(gen),
        )
        if gen.number == 0 and self.prepared.duration_s is not None and not self.config.serve:
            self.deadline = time.monotonic() + self.prepared.duration_s
        if self.config.serve and gen.port is not None:
            recycle = self.config.recycle
            timeout = recycle.health_timeout_s if recycle else self.config.stop_timeout_s * 3
            gen.check_health(self.messages, self.t0, timeout)
        elif not self.config.serve:
            self.on_healthy(gen)

    def handle_health(self: Session, gen: Generation, message: dict[str, Any]) -> None:
        if message.get("ok"):
            self.writer.event(
                EventKind.HEALTHY, message.get("t"), port=message.get("port"), **self.tag(gen)
            )
            self.on_healthy(gen)
        elif gen.alive and gen.stop_requested is None:
            self.writer.event(
                EventKind.UNHEALTHY, message.get("t"), port=message.get("port"), **self.tag(gen)
            )
            if self.supervisor is None:
                self.state.abort(
                    Status.FAILED,
                    f"the service never answered {load_mod.HOST}:{gen.port}/health; "
                    "see artifacts/child-stderr.log",
                )
            gen.killed = True
            gen.kill_group()  # a recycled run restarts it like a crash

    def handle_event(self: Session, gen: Generation, message: dict[str, Any]) -> None:
        fields = {k: v for k, v in message.items() if k not in ("type", "kind", "t")}
        kind = message.get("kind")
        self.writer.event(str(kind), message.get("t"), **fields, **self.tag(gen))
        if kind == EventKind.WARMUP_END and gen.number == 0:
            self.writer.update_meta(
                warmup_end={"t": message.get("t"), "steps": message.get("steps")}
            )
        elif kind == EventKind.PROBE_OVERHEAD:
            self.writer.update_meta(
                probe_overhead={
                    "loop_s": message.get("loop_s"),
                    "probes": message.get("probes") or {},
                }
            )

    def handle_done(self: Session, gen: Generation, message: dict[str, Any]) -> None:
        gen.done = message
        gen.steps = int(message.get("steps", gen.steps))
        gen.errors = int(message.get("errors", gen.errors))
        if message.get("traceback"):
            (self.writer.artifacts / "traceback.txt").write_text(
                str(message["traceback"]), encoding="utf-8"
            )
        fields = {k: v for k, v in message.items() if k not in ("type", "t")}
        self.writer.event(EventKind.DONE, message.get("t"), **fields, **self.tag(gen))
        gen.stop_deadline = min(
            gen.stop_deadline or math.inf, time.monotonic() + self.config.stop_timeout_s
        )

    # -- samples ---------------------------------------------------------------------------------

    def _read_memory(self: Session, gen: Generation) -> tuple[int | None, int | None]:
        t = self.now()
        if t - self.last_uss_t >= self.config.interval_s:
            # USS walks the process's mappings: once per asked interval, however often steps are
            # sampled.
            rss, uss = gen.memory.rss_uss()
            if uss is not None:
                self.last_uss_t = t
            return rss, uss
        return gen.memory.rss(), None

    def write_sample(
        self: Session, gen: Generation, message: dict[str, Any], rss: int | None = None
    ) -> None:
        """One row of samples.csv: the child's counters (``message``) with its memory read now."""
        t = self.now()
        uss = None
        if rss is None:
            rss, uss = self._read_memory(gen)
        if rss is None:
            return
        message = {k: v for k, v in message.items() if k not in ("type", "ack")}
        if message:
            gen.last = message
            gen.steps = int(message.get("steps", gen.steps))
            gen.errors = int(message.get("errors", gen.errors))
        row = {
            **gen.last,
            **message,
            "t": t,
            "rss": rss,
            "uss": uss,
            "pid": gen.pid,
            "generation": gen.number,
        }
        if gen.last:
            row["steps"] = self.base_steps + gen.steps
            row["errors"] = self.base_errors + gen.errors
        else:
            row["steps"] = None  # before the first step: setup is still running
        self.writer.sample(row)
        self.last_sample_t = t
        self._track_rss(gen, rss, started=bool(message))
        steps = self.steps
        self.progress.update(
            t,
            steps,
            steps / max(t, 1e-9),
            rss,
            None if self.rss_start is None else rss - self.rss_start,
        )
        if self.on_sample is not None:
            self.on_sample(row)

    def _track_rss(self: Session, gen: Generation, rss: int, started: bool) -> None:
        if self.rss_start is None and started:
            self.rss_start = rss
        if gen.last or gen.number == 0:  # a restarted generation still starting up is not "the end"
            self.rss_end = rss
        self.rss_peak = max(self.rss_peak or 0, rss)
