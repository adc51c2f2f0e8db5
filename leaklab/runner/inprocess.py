"""In-process probes for a command's Python processes (``leaklab run -- python app.py``).

The bootstrap (``leaklab/runner/bootstrap/sitecustomize.py``, first on the command's
``PYTHONPATH``) calls :func:`start_from_env` when an interpreter starts. It runs the
same probes and the same sampling as a scenario child (:class:`~leaklab.runner.child.StepLoop`)
from a daemon thread, and reports to the parent over a ``SOCK_SEQPACKET`` socket
whose descriptor the parent passed down (``LEAKLAB_INPROCESS``: a JSON spec):

* ``{"type": "hello", "pid", "ppid", "forked", "columns"}`` when it starts (and again in
  each process forked from it, such as gunicorn's workers);
* ``{"type": "sample", ...}`` every interval, and the probes' ``event`` messages;
* a last ``sample``, the probes' end-of-run work and ``probe_overhead`` at exit.

Every message carries ``pid``: one record per message (sequenced packets), so processes
forked from one another never mix their messages on the shared socket.

What the app does is counted by the parent (requests served, or seconds when there is
no load); it writes the count to the file named ``steps_file``, which the thread reads
before each sample so that the probes' per-step figures use the run's own steps.
A process that forks (a pre-fork server's master) stops its probes: the work and the
leak are in the workers.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from leaklab.kinds import EventKind
from leaklab.runner.spec import ChildSpec

ENV = "LEAKLAB_INPROCESS"
#: Longest sleep of the sampling thread, so a probe's extra tick is on time.
_POLL_S = 0.02


class SocketReporter:
    """The child's Reporter over a sequenced-packet socket: one message, one packet.

    Unlike the scenario child it never ends the process: the program is the user's,
    and if the parent is gone the program dies with it (parent-death signal) or goes on
    unobserved."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=os.dup(fd))
        self.broken = False
        self.pid = os.getpid()

    def send(self, message: dict[str, Any]) -> None:
        if self.broken:
            return
        data = json.dumps({**message, "pid": self.pid}, default=repr).encode()
        try:
            self.sock.send(data)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                self.send(
                    {
                        "type": "event",
                        "kind": EventKind.PROBE_ERROR,
                        "t": message.get("t"),
                        "probe": str(message.get("kind") or message.get("type")),
                        "method": "report",
                        "error": f"message of {len(data)} bytes too large",
                    }
                )
            else:
                self.broken = True

    def event(self, kind: str, t: float | None = None, **fields: Any) -> None:
        self.send({"type": "event", "kind": kind, "t": t, **fields})

    def wait_for_ack(self, timeout: float = 5.0) -> None:
        """The parent reads memory from outside at its own pace: nothing to wait for."""


class InProcess:
    """The probes of one process, sampled from a daemon thread."""

    def __init__(self, spec: ChildSpec, forked: bool = False) -> None:
        from leaklab import probes as probe_registry
        from leaklab.runner.child import StepLoop

        self.spec = spec
        self.reporter = SocketReporter(int(spec.report_fd or 0))
        self.t0 = float(spec.t0)
        self.steps_file = spec.steps_file
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.finished = False
        self.handed_over = False  # this process forked workers: they carry the probes now
        self.pid = os.getpid()
        artifacts = Path(spec.artifacts)
        if forked:
            artifacts = artifacts / f"pid-{self.pid}"
        with contextlib.suppress(OSError):
            artifacts.mkdir(parents=True, exist_ok=True)
        active = []
        for name in spec.probes:
            try:
                active.append(probe_registry.create(name))
            except Exception as exc:
                self.reporter.event(
                    EventKind.PROBE_ERROR,
                    self.now(),
                    probe=name,
                    method="create",
                    error=f"{type(exc).__name__}: {exc}",
                )
        self.ctx = probe_registry.ProbeContext(
            artifacts=artifacts,
            emit=lambda kind, **fields: self.reporter.event(kind, self.now(), **fields),
            options=dict(spec.probe_options),
            state=None,
            plan={**spec.plan, "warmup": spec.warmup, "scenario_path": spec.program},
        )
        loop_spec = spec.replace(steps=None, duration_s=None, rate=None)
        self.loop = StepLoop(loop_spec, self.reporter, None, active, self.ctx)  # type: ignore[arg-type]
        self.reporter.send(
            {
                "type": "hello",
                "t": self.now(),
                "ppid": os.getppid(),
                "forked": forked,
                "columns": [c for p in active for c in p.columns],
                "argv": sys.argv[:8],
            }
        )
        for probe in list(active):
            self.loop.call_probe(probe, "start")
        self.thread = threading.Thread(target=self._run, name="leaklab-inprocess", daemon=True)
        self.thread.start()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _read_steps(self) -> None:
        if not self.steps_file:
            return
        with contextlib.suppress(OSError, ValueError):
            self.loop.steps = int(Path(self.steps_file).read_text() or 0)

    def _warmup(self) -> None:
        loop = self.loop
        if loop.warmup_done:
            return
        if loop.warmup_reached():
            loop.warmup_done = self.ctx.warmup_done = True
            self.ctx.steps, self.ctx.t = loop.steps, self.now()
            self.reporter.event(EventKind.WARMUP_END, self.now(), steps=loop.steps)
            loop.call_probes("warmup_end")

    def _run(self) -> None:
        with self.lock:
            self._read_steps()
            self.loop.sample()
        while not self.stopped.wait(_POLL_S):
            with self.lock:
                if self.finished:
                    return
                self._read_steps()
                self._warmup()
                self.loop.sample_if_due()

    def stop(self) -> None:
        """Stop sampling (a pre-fork master after its first fork): no end-of-run work here."""
        self.handed_over = True
        self.stopped.set()

    def finish(self) -> None:
        """At exit: the last sample, the probes' end-of-run work, their measured cost."""
        if os.getpid() != self.pid or self.handed_over:
            return
        self.stopped.set()
        with self.lock:
            if self.finished:
                return
            self.finished = True
            self._read_steps()
            self.loop.sample(final=True)
            loop_s = time.monotonic() - self.loop.start
            self.loop.call_probes("finish")
            if self.loop.all_probes:
                self.reporter.event(
                    EventKind.PROBE_OVERHEAD,
                    self.now(),
                    loop_s=round(loop_s, 6),
                    probes=self.loop.probe_overhead(loop_s),
                )
            self.reporter.send({"type": "done", "t": self.now(), "reason": "exit"})


_current: InProcess | None = None


def _after_fork_in_child() -> None:
    global _current
    parent = _current
    if parent is None:
        return
    try:
        _current = InProcess(parent.spec, forked=True)
    except Exception as exc:  # never break the program: say so on its stderr
        _current = None
        sys.stderr.write(f"leaklab: in-process probes did not start after fork: {exc}\n")


def _after_fork_in_parent() -> None:
    if _current is not None and _current.pid == os.getpid():
        _current.stop()


def _exit_on_sigterm() -> None:
    """Python dies at once on SIGTERM unless told otherwise; a clean exit lets the probes
    finish (chains are found at the end). A handler the program sets later wins."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):

        def exit_cleanly(signum: int, _frame: Any) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, exit_cleanly)


def start_from_env() -> None:
    """Start the probes if this interpreter belongs to a leaklab command run."""
    global _current
    raw = os.environ.get(ENV)
    if not raw or _current is not None:
        return
    try:
        spec = ChildSpec.from_dict(json.loads(raw))
        os.fstat(int(spec.report_fd))  # type: ignore[arg-type]  # a grandchild started with exec: the socket is not ours
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        _current = InProcess(spec)
    except Exception as exc:
        sys.stderr.write(f"leaklab: in-process probes did not start: {exc}\n")
        return
    os.register_at_fork(after_in_child=_after_fork_in_child, after_in_parent=_after_fork_in_parent)
    atexit.register(lambda: _current is not None and _current.finish())
    _exit_on_sigterm()
