"""One child process of a run (a *generation*: 0, then 1, 2 ... when the supervisor restarts it).

Each generation runs below its own reaper (:mod:`leaklab.runner.reaper`), which kills
whatever the child leaves behind and caps its logs; the child leads its own process
group, reports on its own pipe, and is
read by its own thread, which tags every message with the generation number and
puts it on the run's one queue: ``(generation, message)``, and
``(generation, None)`` at end of file. In service mode a second thread polls
``/health`` once the child names its port and puts ``{"type": "healthy", ...}``
on the same queue.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from leaklab.kinds import EventKind
from leaklab.runner.heap import ProcessRss
from leaklab.runner.spec import ChildSpec

HOST = "127.0.0.1"
#: Longest time before a process the child started counts in its RSS.
DESCENDANTS_REFRESH_S = 0.25
HEALTH_PATH = "/health"
_HEALTH_POLL_S = 0.02

Message = tuple[int, "dict[str, Any] | None"]


#: Bytes of each child stream (stdout, stderr) kept per generation: the first and the last.
LOG_HEAD_BYTES = 1 << 20
LOG_TAIL_BYTES = 1 << 20
#: Seconds the reaper may take to start the child and name its pid.
_REAPER_START_S = 60.0
_REAPER = Path(__file__).with_name("reaper.py")


class ChildMemory:
    """RSS (and USS where cheap) of the child, optionally summed over every process it started.

    ``root`` is the process under which the child's descendants live (its reaper, which
    adopts the ones whose parent died); by default the child itself."""

    def __init__(self, pid: int, include_children: bool, root: int | None = None) -> None:
        self.process = psutil.Process(pid)
        self.root = psutil.Process(root) if root is not None else self.process
        self.include_children = include_children
        self.uss_available = (
            sys.platform.startswith("linux") and Path(f"/proc/{pid}/smaps_rollup").exists()
        )
        self._readers: dict[int, ProcessRss] = {}  # pid -> its RSS reader
        self._tracked: list[psutil.Process] = []
        self._descendants_due = 0.0

    def processes(self) -> list[psutil.Process]:
        if not self.include_children:
            return [self.process]
        below = [p for p in self.root.children(recursive=True) if p.pid != self.process.pid]
        return [self.process, *below]

    def rss(self) -> int | None:
        """The RSS of the child (and of what it started), read at every sample through a
        :class:`ProcessRss` per process. The list of descendants is walked again at most every
        ``DESCENDANTS_REFRESH_S``: the walk reads every process of the machine."""
        now = time.monotonic()
        if now >= self._descendants_due:
            try:
                self._tracked = self.processes()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                return None
            self._descendants_due = now + DESCENDANTS_REFRESH_S
            self._close_readers({p.pid for p in self._tracked})
        total = 0
        for proc in self._tracked:
            rss = self._rss_of(proc)
            if rss is None:
                if proc.pid == self.process.pid:
                    return None
                self._descendants_due = 0.0  # a descendant is gone: walk the tree again next time
                continue
            total += rss
        return total

    def _rss_of(self, proc: psutil.Process) -> int | None:
        """One process's RSS, or None once it is gone."""
        reader = self._readers.get(proc.pid)
        if reader is None:
            reader = self._readers[proc.pid] = ProcessRss(proc.pid)
        if reader.available:
            return reader.read()
        try:  # no /proc/PID/statm to keep open: psutil reads it its own way
            return int(proc.memory_info().rss)
        except psutil.Error:
            return None

    def _close_readers(self, keep: set[int] | None = None) -> None:
        for pid in [p for p in self._readers if keep is None or p not in keep]:
            self._readers.pop(pid).close()

    def close(self) -> None:
        """Close the files kept open for reading RSS."""
        self._close_readers()

    def rss_uss(self) -> tuple[int | None, int | None]:
        if not self.uss_available:
            return self.rss(), None
        rss = uss = 0
        try:
            for proc in self.processes():
                info = proc.memory_full_info()
                rss += info.rss
                uss += info.uss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None, None
        return rss, uss


def kill_process_group(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, pgid: int | None = None
) -> None:
    """Signal the child's process group (``pgid``, by default ``proc``'s own); after SIGKILL,
    wait for ``proc`` (the child's reaper, which kills whatever else is left, then exits)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid if pgid is None else pgid, sig)
    if sig == signal.SIGKILL:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _read_child_pid(fd: int, reaper: subprocess.Popen[bytes]) -> int:
    """The child's pid, as its reaper writes it once the child has started; OSError with the
    reaper's reason when it could not start the child."""
    import select

    data = b""
    deadline = time.monotonic() + _REAPER_START_S
    try:
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if data.startswith(b"error "):
        raise OSError(data[len(b"error ") :].decode(errors="replace").strip())
    if not data.endswith(b"\n"):
        raise RuntimeError(
            f"the reaper process did not start the child (exit code {reaper.poll()}); "
            "see artifacts/child-stderr.log"
        )
    return int(data.split()[0])


def in_background(name: str, target: Callable[..., None], *args: Any) -> None:
    """Run ``target(*args)`` in a daemon thread (a reader of a child's messages)."""
    threading.Thread(target=target, args=args, daemon=True, name=name).start()


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


@dataclass
class Reaped:
    """A process started below its own reaper (:mod:`leaklab.runner.reaper`)."""

    proc: subprocess.Popen[bytes]  # the reaper: it exits as the child did, once nothing is left
    pid: int  # the child itself, leader of its own process group and session
    lifeline_fd: int  # closing it makes the reaper kill everything below it


def start_reaped(
    command: list[str],
    pass_fds: tuple[int, ...],
    stdout: IO[bytes],
    stderr: IO[bytes],
    env: dict[str, str],
) -> Reaped:
    """Start ``command`` below a reaper, which passes ``pass_fds`` on to it and copies its
    output into ``stdout`` and ``stderr``, capped (the first and last bytes of each)."""
    lifeline_read_fd, lifeline_write_fd = os.pipe()
    pid_read_fd, pid_write_fd = os.pipe()
    reaper = [
        sys.executable,
        "-I",  # the reaper imports no code of the run's (a Python program's PYTHONPATH bootstrap)
        str(_REAPER),
        "--lifeline",
        str(lifeline_read_fd),
        "--pid-fd",
        str(pid_write_fd),
        *(arg for fd in pass_fds for arg in ("--pass-fd", str(fd))),
        "--log-head",
        str(LOG_HEAD_BYTES),
        "--log-tail",
        str(LOG_TAIL_BYTES),
        "--",
        *command,
    ]
    try:
        proc = subprocess.Popen(
            reaper,
            pass_fds=(*pass_fds, lifeline_read_fd, pid_write_fd),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            env=env,
        )
    except BaseException:
        _close(lifeline_write_fd, pid_read_fd)
        raise
    finally:
        _close(lifeline_read_fd, pid_write_fd)
    try:
        pid = _read_child_pid(pid_read_fd, proc)
    except BaseException:
        os.close(lifeline_write_fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise
    return Reaped(proc, pid, lifeline_write_fd)


def decode(data: bytes) -> Any:
    """A message from a child (one JSON line or packet); a ``protocol_error`` event for
    anything else, with the start of what came."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        line = data[:200].decode(errors="replace")
        return {"type": "event", "kind": EventKind.PROTOCOL_ERROR, "line": line}


def _reader(fd: int, generation: int, out: queue.Queue[Message]) -> None:
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            out.put((generation, decode(line)))
    out.put((generation, None))


class Generation:
    """A started child process and what the parent knows about it."""

    def __init__(
        self,
        number: int,
        proc: subprocess.Popen[bytes],
        pid: int,
        ack_fd: int | None,
        lifeline_fd: int | None,
        t_spawn: float,
        include_children: bool,
    ) -> None:
        self.number = number
        self.proc = proc  # the reaper: it exits as the child did, once nothing of the child is left
        self.pid = pid  # the child itself, leader of its own process group
        self.ack_fd: int | None = ack_fd
        self.lifeline_fd: int | None = (
            lifeline_fd  # closing it makes the reaper kill everything below it
        )
        self.t_spawn = t_spawn  # seconds since the run started
        self.memory = ChildMemory(pid, include_children, root=proc.pid)
        self.t_ready: float | None = None  # hello received: setup done
        self.t_healthy: float | None = None  # /health answered 200 (service) or ready (steps)
        self.t_exit: float | None = None
        self.port: int | None = None
        self.steps = 0
        self.errors = 0
        self.last: dict[str, Any] = {}  # the last counters it reported
        self.done: dict[str, Any] | None = None
        self.eof = False
        self.stop_requested: str | None = None  # why the parent asked it to stop, if it did
        self.stop_deadline: float | None = None  # monotonic time after which it is killed
        self.killed = False  # needed SIGKILL
        #: its final sample is in: its probes' finish and teardown run now, not the scenario
        self.finishing = False

    @classmethod
    def spawn(
        cls,
        number: int,
        spec: ChildSpec,
        messages: queue.Queue[Message],
        stdout: IO[bytes],
        stderr: IO[bytes],
        t_spawn: float,
        include_children: bool,
    ) -> Generation:
        read_fd, write_fd = os.pipe()
        ack_read_fd, ack_write_fd = os.pipe()
        spec = spec.replace(report_fd=write_fd, ack_fd=ack_read_fd)
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        child = [sys.executable, "-m", "leaklab.runner.child", json.dumps(spec.to_dict())]
        try:
            started = start_reaped(child, (write_fd, ack_read_fd), stdout, stderr, env)
        except BaseException:
            _close(read_fd, ack_write_fd)
            raise
        finally:
            _close(write_fd, ack_read_fd)
        in_background(f"leaklab-child-reader-{number}", _reader, read_fd, number, messages)
        return cls(
            number,
            started.proc,
            started.pid,
            ack_write_fd,
            started.lifeline_fd,
            t_spawn,
            include_children,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def finished(self) -> bool:
        """Its pipe is closed and the process is gone."""
        return self.eof and self.proc.poll() is not None

    def ack(self) -> None:
        if self.ack_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.ack_fd, b"k")

    def close(self) -> None:
        self.memory.close()
        if self.ack_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.ack_fd)
            self.ack_fd = None

    def release(self) -> None:
        """Close the lifeline: the reaper kills whatever of the child is left, then exits."""
        self.close()
        if self.lifeline_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.lifeline_fd)
            self.lifeline_fd = None

    def send_signal(self, sig: int) -> None:
        """Signal the child process itself (its teardown stops what it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the child's process group; SIGKILL also waits for the reaper to clear up."""
        kill_process_group(self.proc, sig, pgid=self.pid)

    def check_health(self, messages: queue.Queue[Message], t0: float, timeout_s: float) -> None:
        """Poll ``GET /health`` from a thread until it answers 200, the child dies or
        ``timeout_s`` passes."""
        port = self.port

        def poll() -> None:
            deadline = time.monotonic() + timeout_s
            ok = False
            while time.monotonic() < deadline and self.alive and port is not None:
                connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
                try:
                    connection.request("GET", HEALTH_PATH)
                    if connection.getresponse().status == 200:
                        ok = True
                        break
                except OSError:
                    pass
                finally:
                    connection.close()
                time.sleep(_HEALTH_POLL_S)
            messages.put(
                (
                    self.number,
                    {"type": "healthy", "ok": ok, "t": time.monotonic() - t0, "port": port},
                )
            )

        threading.Thread(target=poll, daemon=True, name=f"leaklab-health-{self.number}").start()
