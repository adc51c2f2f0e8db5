"""The parent's event loop over a run's child processes (:class:`Session`).

The session starts generations (:meth:`Session.spawn`), reads their messages off one queue
(handled by :class:`~leaklab.runner.messages.MessageHandlers`), samples the current one,
enforces the cap and the deadlines, supervises restarts and load
(:class:`~leaklab.runner.supervision.Supervision`), and at the end writes how the run ended
(:meth:`Session.finish`). Where the run is lives in one :class:`~leaklab.runner.state.RunState`.

Hooks a subclass may override (:class:`leaklab.runner.command.CommandSession` does):
``spawn``, ``message_handlers`` and the handlers, ``load_config``, ``record_request``,
``stop_generation``, ``enforce_deadlines``, ``on_exit``, ``finish``.
"""

from __future__ import annotations

import math
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from leaklab import store, units
from leaklab.kinds import EventKind, Status
from leaklab.runner import load as load_mod
from leaklab.runner.generation import Generation, Message
from leaklab.runner.messages import MessageHandlers
from leaklab.runner.parent import CAP_POLL_S, Look, Prepared, RunConfig, RunResult, load_config
from leaklab.runner.progress import Progress
from leaklab.runner.spec import ChildSpec
from leaklab.runner.state import RunState
from leaklab.runner.supervision import Supervision
from leaklab.runner.supervisor import Restart, Supervisor


class Session(MessageHandlers, Supervision):
    """One run's processes (one generation, unless recycled) and what the parent knows of them."""

    def __init__(
        self,
        config: RunConfig,
        prepared: Prepared,
        writer: store.RunWriter,
        spec: ChildSpec | None,
        t0: float,
        on_sample: Callable[[dict[str, Any]], None] | None,
        stdout: Any,
        stderr: Any,
        interrupt: threading.Event | None = None,
    ) -> None:
        self.config, self.prepared, self.writer, self.spec = config, prepared, writer, spec
        self.t0, self.on_sample, self.stdout, self.stderr = t0, on_sample, stdout, stderr
        #: set from another thread (the gate's, on Ctrl-C): the run stops as on SIGINT
        self.interrupt = interrupt
        self.state = RunState()
        self.messages: queue.Queue[Message] = queue.Queue()
        self.handlers = self.message_handlers()
        self.generations: list[Generation] = []
        self.current: Generation | None = None  # the newest generation: the one sampled
        self.progress = Progress(prepared, config.progress)
        self.rss_start: int | None = None
        self.rss_end: int | None = None
        self.rss_peak: int | None = None
        self.last_sample_t = 0.0
        self.last_uss_t = -math.inf
        self.interrupts = 0
        self.supervisor = Supervisor(config.recycle) if config.recycle else None
        self.restarts_to_write: dict[
            int, Restart
        ] = {}  # restarts whose old generation is still stopping
        self.load: load_mod.LoadGenerator | None = None
        self.load_ended = False
        self.deadline: float | None = None  # time.monotonic() when a recycled step run must end
        self.base_steps = 0  # steps of the generations before the current one
        self.base_errors = 0
        self.stop_rule = config.stop_rule if prepared.until_confident else None
        self.decided: Look | None = None  # the look that found the verdict confident
        #: time.monotonic() after which nothing of the run may still run: --duration plus the grace
        self.hard_deadline: float | None = (
            t0 + prepared.duration_s + config.grace_s if prepared.duration_s is not None else None
        )

    def now(self) -> float:
        return time.monotonic() - self.t0

    @property
    def steps(self) -> int:
        return sum(g.steps for g in self.generations)

    @property
    def errors(self) -> int:
        return sum(g.errors for g in self.generations)

    def live(self) -> list[Generation]:
        return [g for g in self.generations if g.t_exit is None]

    def tag(self, gen: Generation) -> dict[str, Any]:
        """Events of a recycled run name their generation; a plain run's events stay as they
        were."""
        return {"generation": gen.number} if self.supervisor is not None or gen.number else {}

    # -- hooks -------------------------------------------------------------------------------

    def load_config(self) -> load_mod.LoadConfig:
        """The load to send (a command run sends it to the program's own path)."""
        return load_config(self.config, self.prepared)

    def record_request(self, row: dict[str, Any]) -> None:
        """One request's result, from the load generator's thread (a command run counts them)."""
        self.writer.request(row)

    def spawn(self) -> Generation:
        """Start the next generation (a command run starts the program instead)."""
        assert self.spec is not None
        number = len(self.generations)
        spec = self.spec
        if number > 0:
            # Later generations continue the run: no second warm-up, what is left of the budget,
            # and their own artifacts folder so probe files do not overwrite each other.
            spec = spec.replace(warmup={}, duration_s=None, deadline=self.deadline)
            if self.config.probes:
                artifacts = self.writer.artifacts / f"gen-{number}"
                artifacts.mkdir(exist_ok=True)
                spec = spec.replace(artifacts=str(artifacts))
            if spec.steps is not None:
                spec = spec.replace(steps=max(1, int(self.prepared.steps or 0) - self.steps))
        self.base_steps, self.base_errors = self.steps, self.errors
        gen = Generation.spawn(
            number,
            spec,
            self.messages,
            self.stdout,
            self.stderr,
            self.now(),
            self.config.include_children,
        )
        self.generations.append(gen)
        self.current = gen
        self.writer.event(EventKind.START, gen.t_spawn, pid=gen.pid, **self.tag(gen))
        return gen

    def stop_generation(self, gen: Generation, why: str, sig: int, timeout_s: float) -> None:
        """Ask a generation to stop (``sig``), killing it after ``timeout_s``."""
        gen.stop_requested = why
        if sig == signal.SIGKILL:
            gen.killed = True
            gen.kill_group()
            return
        gen.send_signal(sig)
        gen.stop_deadline = min(gen.stop_deadline or math.inf, time.monotonic() + timeout_s)

    def enforce_deadlines(self) -> None:
        """Kill what outlived --duration plus the grace, and generations past their stop timeout."""
        if self.hard_deadline is not None and time.monotonic() > self.hard_deadline and self.live():
            self._timed_out()
        for gen in self.live():
            if gen.stop_deadline is not None and time.monotonic() > gen.stop_deadline and gen.alive:
                recycle = self.config.recycle
                if gen.stop_requested == "restart" and recycle is not None:
                    reason, timeout = "kill timeout", recycle.kill_timeout_s
                else:
                    reason, timeout = "stop timeout", self.config.stop_timeout_s
                self.writer.event(
                    EventKind.KILLED, self.now(), reason=reason, timeout_s=timeout, **self.tag(gen)
                )
                gen.killed = True
                gen.kill_group()

    def shutdown(self) -> None:
        if self.load is not None:
            self.load.stop()
        for gen in self.generations:
            gen.release()  # its reaper kills anything the scenario started, in any session
            gen.kill_group()
        if self.load is not None:
            self.load.join(timeout=self.config.request_timeout_s + 5)
            self.load_end()

    # -- the loop ----------------------------------------------------------------------------

    def loop(self) -> None:
        on_main = threading.current_thread() is threading.main_thread()
        previous = (
            {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            if on_main
            else {}
        )
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            next_cap_check = 0.0
            while True:
                self._receive()
                if self.interrupt is not None and self.interrupt.is_set() and not self.interrupts:
                    self._on_signal(signal.SIGINT, None)
                for gen in self.generations:
                    if gen.t_exit is None and gen.finished:
                        self.on_exit(gen)
                now = self.now()
                if now >= next_cap_check and not self.state.aborted:
                    self._check_cap()
                    next_cap_check = now + CAP_POLL_S
                self._sample_if_quiet(now)
                self.enforce_deadlines()
                self._advance(now)
                if self._over():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _receive(self) -> None:
        """Handle the next message, waiting at most until the next check is due."""
        timeout = CAP_POLL_S
        if self.supervisor is not None:  # wake up on time for the next memory check
            timeout = max(0.0, min(timeout, self.supervisor.clock.next_at - self.now()))
        try:
            number, message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        gen = self.generations[number]
        if message is None:
            gen.eof = True
        else:
            self.dispatch(gen, message)

    def _sample_if_quiet(self, now: float) -> None:
        """The child is busy in setup or a long step: its RSS still counts."""
        current = self.current
        if (
            not self.state.aborted
            and current is not None
            and current.alive
            and not current.finishing
            and now - self.last_sample_t >= max(2 * self.prepared.sample_interval_s, CAP_POLL_S)
        ):
            self.write_sample(current, {})

    def _advance(self, now: float) -> None:
        """End the load's run once the load is over; supervise; look at the data when due."""
        if self.load is not None and self.load.finished.is_set() and self.state.running:
            self.stop_service()
        if self.supervisor is not None and self.state.running:
            self.supervise(now)
        stop_rule = self.stop_rule
        if (
            stop_rule is not None
            and self.decided is None
            and not self.state.aborted
            and now >= stop_rule.next_at
        ):
            self._look(now)

    def _over(self) -> bool:
        # Exit handled, not just finished: a child that exits between the loop's exit check
        # and this one would otherwise end the run without its exit (and restart) events.
        if any(g.t_exit is None for g in self.generations):
            return False
        return self.supervisor is None or not self.state.running

    def _look(self, now: float) -> None:
        """Ask the stop rule about the samples so far; stop the run once it is confident."""
        assert self.stop_rule is not None
        try:
            look = self.stop_rule.look(self.writer.path, now)
        except Exception as exc:  # a look that fails must not end the recording
            self.writer.event(EventKind.LOOK_ERROR, now, error=f"{type(exc).__name__}: {exc}")
            self.stop_rule = None
            return
        self.progress.note(look.text)
        if not look.decided:
            return
        self.decided = look
        looks = self.stop_rule.looks
        self.writer.event(
            EventKind.DECIDED,
            now,
            label=look.label,
            looks=looks,
            text=look.text,
            window_start=look.window_start,
        )
        if look.window_start:
            self.writer.update_meta(warmup_end=look.window_start)
        self.writer.update_meta(
            decided={
                "label": look.label,
                "t": round(now, 6),
                "looks": looks,
                "window_end": getattr(look, "window_end", None),
            }
        )
        if self.load is not None:
            self.load.stop()  # the service run then ends as when its load is over
            return
        for gen in self.live():
            self.stop_generation(gen, "decided", signal.SIGTERM, self.config.stop_timeout_s)

    def _timed_out(self) -> None:
        """The run is past --duration plus the grace: kill what is left, say where it was stuck."""
        self.hard_deadline = None
        duration, grace = self.prepared.duration_s or 0.0, self.config.grace_s
        stuck = {gen.number: self._phase(gen) for gen in self.live()}
        where = ", ".join(sorted(set(stuck.values())))
        self.state.abort(
            Status.TIMED_OUT,
            f"still running {units.format_duration(duration)} (--duration) + "
            f"{units.format_duration(grace)} (grace) after the start, in {where}; killed",
        )
        self.writer.event(
            EventKind.TIMED_OUT,
            self.now(),
            duration_s=duration,
            grace_s=grace,
            phases={str(n): phase for n, phase in stuck.items()},
        )
        if self.load is not None:
            self.load.stop()
        for gen in self.live():
            gen.killed = True
            gen.kill_group()

    def _phase(self, gen: Generation) -> str:
        """Where a live generation is, from what it has said."""
        if gen.done is not None:
            return "teardown"
        if gen.t_ready is None:
            return "setup"
        return "the probes' finish" if gen.finishing else "a step"

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.interrupts += 1
        self.state.abort(Status.INTERRUPTED, f"stopped by {signal.Signals(signum).name}")
        self.writer.event(EventKind.INTERRUPT, self.now(), signal=signal.Signals(signum).name)
        if self.load is not None:
            self.load.stop()
        for gen in self.live():
            if self.interrupts == 1:
                gen.stop_requested = gen.stop_requested or "interrupt"
                gen.kill_group(signal.SIGTERM)
                gen.stop_deadline = time.monotonic() + self.config.stop_timeout_s
            else:
                gen.kill_group()

    def _check_cap(self) -> None:
        for gen in self.live():
            rss = gen.memory.rss()
            if rss is None:
                continue
            self.rss_peak = max(self.rss_peak or 0, rss)
            if rss > self.prepared.max_rss:
                self.state.abort(
                    Status.KILLED_AT_CAP,
                    f"RSS {units.format_size(rss)} crossed the cap of "
                    f"{units.format_size(self.prepared.max_rss)}",
                )
                if gen is self.current:
                    self.write_sample(gen, {}, rss=rss)
                self.writer.event(
                    EventKind.KILLED_AT_CAP,
                    self.now(),
                    rss=rss,
                    max_rss=self.prepared.max_rss,
                    **self.tag(gen),
                )
                if self.load is not None:
                    self.load.stop()
                for other in self.live():
                    other.kill_group()
                return

    # -- the end -----------------------------------------------------------------------------

    def finish(self, ended: Any) -> RunResult:
        """Write how the run ended (the last events, meta.json's status and counters)."""
        final = self.current
        returncode = final.proc.poll() if final is not None else None
        done = (final.done if final is not None else None) or {}
        self._write_open_restarts()
        status, message = self.final_status(done, returncode)
        self.state.end(status, message)
        duration = self.now()
        if status != Status.COMPLETED:
            self.writer.event(EventKind.STATUS, duration, status=status, message=message)
        # Every event is written by now: the counter is the number of lines of events.jsonl.
        counters = self._counters()
        self.writer.update_meta(
            status=status.value,
            end=store.iso(ended),
            duration_s=round(duration, 3),
            exit={
                "status": status.value,
                "message": message,
                "returncode": returncode,
                "phase": done.get("phase"),
            },
            counters=counters,
        )
        return RunResult(
            self.writer.path,
            status.value,
            self.steps,
            duration,
            self.rss_start,
            self.rss_end,
            self.rss_peak,
            self.errors,
            message,
            counters.get("requests"),
            counters.get("restarts"),
        )

    def _write_open_restarts(self) -> None:
        """Restarts still waiting for their old generation to go, or for their new one to be
        healthy."""
        for restart in self.restarts_to_write.values():
            self.write_restart(restart)
        self.restarts_to_write.clear()
        if self.supervisor is not None and self.supervisor.pending is not None:
            unfinished = self.supervisor.finish_pending(self.now(), healthy=False)
            if unfinished is not None:
                self.write_restart(unfinished)

    def final_status(self, done: dict[str, Any], returncode: int | None) -> tuple[Status, str]:
        """The status the run ends with: the cause that aborted it, else how its last generation
        ended."""
        reason = done.get("reason")
        raised = f"scenario raised in {done.get('phase', '?')}: {done.get('error', '')}"
        if self.state.status is not None:
            message = self.state.message
            if self.state.status == Status.INTERRUPTED and reason == Status.FAILED:
                message += f"; {raised}"
            return self.state.status, message
        if (self.state.stopping or self.decided is not None) and reason in (
            None,
            Status.INTERRUPTED,
        ):
            # The parent stopped the service because the load was over (a generation may have
            # been stopped while it was still starting, before it could say anything).
            reason = Status.COMPLETED
        if reason in (Status.COMPLETED, Status.FAILED, Status.INTERRUPTED):
            return Status(reason), raised if reason == Status.FAILED else ""
        how = (
            f"signal {-returncode}"
            if returncode is not None and returncode < 0
            else f"exit code {returncode}"
        )
        return (
            Status.FAILED,
            f"child process ended without finishing ({how}); see artifacts/child-stderr.log",
        )

    def _counters(self) -> dict[str, Any]:
        counters: dict[str, Any] = {
            "steps": self.steps,
            "errors": self.errors,
            "samples": self.writer.samples_written,
            "events": self.writer.events_written,
            "rss_start": self.rss_start,
            "rss_end": self.rss_end,
            "rss_peak": self.rss_peak,
        }
        if self.supervisor is not None or len(self.generations) > 1:
            restarts = self.supervisor.restarts if self.supervisor else []
            counters["generations"] = len(self.generations)
            counters["restarts"] = {
                "memory": sum(r.reason == "memory" for r in restarts),
                "crash": sum(r.reason == "crash" for r in restarts),
            }
        if self.load is not None:
            counters["requests"] = self.load.summary()
        return counters
