"""The session's side of ``--recycle`` and ``--serve`` (:class:`Supervision`, a mixin of
:class:`~leaklab.runner.session.Session`): send a ready generation the load, restart
one at the memory limit or after a crash, write each restart once its old generation is gone.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from leaklab.kinds import EventKind, Status
from leaklab.runner import load as load_mod
from leaklab.runner.generation import Generation
from leaklab.runner.supervisor import CrashLimit, Restart

if TYPE_CHECKING:
    from leaklab.runner.session import Session


class Supervision:
    """Restarts and load; ``self`` is the session."""

    def on_healthy(self: Session, gen: Generation) -> None:
        """A generation is ready for work: send it the load, finish the restart that started it."""
        gen.t_healthy = self.now()
        if gen is not self.current or gen.stop_requested is not None or not self.state.running:
            return
        if self.config.serve and gen.port is not None:
            self._send_load(gen)
        sup = self.supervisor
        if sup is None or sup.pending is None or sup.pending.new_generation != gen.number:
            return
        restart = sup.finish_pending(self.now(), healthy=True)
        assert restart is not None
        old = self.generations[restart.generation]
        if old.t_exit is None:
            if old.stop_requested is None and self.config.recycle is not None:
                # Reload: the new generation has the traffic; now the old one may go.
                self.stop_generation(
                    old, "restart", self.config.recycle.signal, self.config.recycle.kill_timeout_s
                )
            self.restarts_to_write[old.number] = restart
        else:
            self.write_restart(restart)

    def _send_load(self: Session, gen: Generation) -> None:
        assert gen.port is not None
        if self.load is not None:
            self.load.set_target(gen.port, gen.number)
            return
        config = self.load_config()
        self.load = load_mod.start_load(config, self.t0, self.record_request, gen.port, gen.number)
        self.writer.event(EventKind.LOAD_START, self.now(), **config.event_fields())

    def write_restart(self: Session, restart: Restart) -> None:
        self.writer.event(EventKind.RESTART, restart.t, **restart.to_event())

    def supervise(self: Session, now: float) -> None:
        """Spawn a restart's new generation when due; restart the current one over the memory
        limit."""
        sup = self.supervisor
        policy = self.config.recycle
        assert sup is not None and policy is not None
        if sup.spawn_due(now):
            gen = self.spawn()
            if sup.pending is not None:
                sup.pending.new_generation = gen.number
        if not sup.check_due(now) or sup.pending is not None or sup.spawn_at is not None:
            return
        current = self.current
        if current is None or not current.alive or current.stop_requested is not None:
            return
        rss = current.memory.rss()
        if rss is None or not sup.over_limit(rss):
            return
        restart = sup.memory_restart(now, current.number, rss)
        self.write_sample(current, {}, rss=rss)  # the row that shows the trigger
        if policy.mode == "reload":
            restart.new_generation = (
                self.spawn().number
            )  # the old one keeps serving until the new one is healthy
        else:
            self.stop_generation(current, "restart", policy.signal, policy.kill_timeout_s)

    def on_exit(self: Session, gen: Generation) -> None:
        """A generation is gone (a hook: a command run also stops its threads)."""
        now = self.now()
        gen.t_exit = now
        gen.release()  # its reaper is gone too: close the lifeline as well as the ack pipe
        sup = self.supervisor
        if sup is not None or self.config.serve:
            self.writer.event(
                EventKind.EXIT,
                now,
                returncode=gen.proc.returncode,
                killed=gen.killed,
                **self.tag(gen),
            )
        if sup is None:
            return
        restart = self.restarts_to_write.pop(gen.number, None)
        if restart is not None:  # reload: the old generation is gone after the new one took over
            restart.stopped_after_s = round(now - restart.t, 6)
            restart.killed = gen.killed
            self.write_restart(restart)
            return
        pending = sup.pending
        if (
            pending is not None
            and pending.generation == gen.number
            and gen.stop_requested == "restart"
        ):
            pending.stopped_after_s = round(now - pending.t, 6)
            pending.killed = gen.killed
            if self.state.running:
                pending.new_generation = (
                    self.spawn().number
                )  # restart: the new one starts once the old one is gone
            return
        if gen is not self.current or not self.state.running:
            return
        if self._budget_spent(gen):
            self.state.spend()
            return
        self._crashed(gen, now)

    def _budget_spent(self: Session, gen: Generation) -> bool:
        """A step run's generation that finished its share of the steps or time ends the run."""
        if self.config.serve or (gen.done or {}).get("reason") != Status.COMPLETED:
            return False
        steps_left = self.prepared.steps is None or self.steps < self.prepared.steps
        time_left = self.deadline is None or time.monotonic() < self.deadline
        return (
            not (steps_left and time_left) or self.prepared.steps is None and self.deadline is None
        )

    def _settle_pending(self: Session, now: float) -> None:
        """The new generation of a restart died before it was healthy: write the restart as
        unfinished."""
        sup = self.supervisor
        assert sup is not None and sup.pending is not None
        unfinished = sup.finish_pending(now, healthy=False)
        if unfinished is None:
            return
        old = self.generations[unfinished.generation]
        if old.t_exit is None:
            self.stop_generation(old, "restart", signal.SIGTERM, self.config.stop_timeout_s)
            self.restarts_to_write[old.number] = unfinished
        else:
            self.write_restart(unfinished)

    def _crashed(self: Session, gen: Generation, now: float) -> None:
        sup = self.supervisor
        assert sup is not None
        done = gen.done or {}
        failed = done.get("reason") == Status.FAILED
        error = (
            f"scenario raised in {done.get('phase', '?')}: {done.get('error', '')}"
            if failed
            else None
        )
        if sup.pending is not None:
            self._settle_pending(now)
        uptime = now - (gen.t_healthy if gen.t_healthy is not None else now)
        try:
            restart = sup.crash_restart(now, gen.number, uptime, gen.proc.returncode, error)
        except CrashLimit as exc:
            self.state.abort(Status.FAILED, str(exc))
            self.writer.event(
                EventKind.GAVE_UP,
                now,
                restarts=sup.backoff.consecutive,
                message=self.state.message,
                **self.tag(gen),
            )
            if self.load is not None:
                self.load.stop()
            return
        self.writer.event(
            EventKind.CRASH,
            now,
            returncode=gen.proc.returncode,
            error=error,
            backoff_s=restart.backoff_s,
            uptime_s=round(uptime, 6),
            **self.tag(gen),
        )

    def stop_service(self: Session) -> None:
        """The load is over (or a command run's time): stop every generation gracefully; the run
        then completes."""
        self.state.stop()
        self.load_end()
        if self.supervisor is not None:
            self.supervisor.spawn_at = None
        for gen in self.live():
            self.stop_generation(
                gen, gen.stop_requested or "end", signal.SIGTERM, self.config.stop_timeout_s
            )

    def load_end(self: Session) -> None:
        """The load's summary, once (``load_end``)."""
        if self.load is None or self.load_ended:
            return
        self.load_ended = True
        summary = self.load.summary()
        if self.load.failure:
            summary["failure"] = self.load.failure
        self.writer.event(EventKind.LOAD_END, self.now(), **summary)
