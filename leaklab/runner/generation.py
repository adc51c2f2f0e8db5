"""One child process of a run (a *generation*: 0, then 1, 2 ... when the supervisor restarts it).

Each generation leads its own process group, reports on its own pipe, and is
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
from pathlib import Path
from typing import IO, Any

import psutil

HOST = "127.0.0.1"
HEALTH_PATH = "/health"
_HEALTH_POLL_S = 0.02

Message = tuple[int, "dict[str, Any] | None"]


class ChildMemory:
    """RSS (and USS where cheap) of the child, optionally summed over its own children."""

    def __init__(self, pid: int, include_children: bool) -> None:
        self.process = psutil.Process(pid)
        self.include_children = include_children
        self.uss_available = sys.platform.startswith("linux") and Path(f"/proc/{pid}/smaps_rollup").exists()

    def _processes(self) -> list[psutil.Process]:
        if not self.include_children:
            return [self.process]
        return [self.process, *self.process.children(recursive=True)]

    def rss(self) -> int | None:
        total = 0
        try:
            for proc in self._processes():
                total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return total

    def rss_uss(self) -> tuple[int | None, int | None]:
        if not self.uss_available:
            return self.rss(), None
        rss = uss = 0
        try:
            for proc in self._processes():
                info = proc.memory_full_info()
                rss += info.rss
                uss += info.uss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None, None
        return rss, uss


def kill_process_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the child and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _reader(fd: int, generation: int, out: queue.Queue[Message]) -> None:
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            try:
                out.put((generation, json.loads(line)))
            except json.JSONDecodeError:
                out.put((generation, {"type": "event", "kind": "protocol_error", "line": line[:200].decode(errors="replace")}))
    out.put((generation, None))


class Generation:
    """A started child process and what the parent knows about it."""

    def __init__(self, number: int, proc: subprocess.Popen[bytes], ack_fd: int, t_spawn: float, include_children: bool) -> None:
        self.number = number
        self.proc = proc
        self.pid = proc.pid
        self.ack_fd: int | None = ack_fd
        self.t_spawn = t_spawn  # seconds since the run started
        self.memory = ChildMemory(proc.pid, include_children)
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

    @classmethod
    def spawn(cls, number: int, spec: dict[str, Any], messages: queue.Queue[Message], stdout: IO[bytes],
              stderr: IO[bytes], t_spawn: float, include_children: bool) -> Generation:
        read_fd, write_fd = os.pipe()
        ack_read_fd, ack_write_fd = os.pipe()
        spec = {**spec, "report_fd": write_fd, "ack_fd": ack_read_fd}
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "leaklab.runner.child", json.dumps(spec)],
                pass_fds=(write_fd, ack_read_fd), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                start_new_session=True, env=env,
            )
        except BaseException:
            for fd in (read_fd, ack_write_fd):
                os.close(fd)
            raise
        finally:
            os.close(write_fd)
            os.close(ack_read_fd)
        threading.Thread(target=_reader, args=(read_fd, number, messages), daemon=True,
                         name=f"leaklab-child-reader-{number}").start()
        return cls(number, proc, ack_write_fd, t_spawn, include_children)

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
        if self.ack_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.ack_fd)
            self.ack_fd = None

    def send_signal(self, sig: int) -> None:
        """Signal the child process itself (its teardown stops what it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        kill_process_group(self.proc, sig)

    def check_health(self, messages: queue.Queue[Message], t0: float, timeout_s: float) -> None:
        """Poll ``GET /health`` from a thread until it answers 200, the child dies or ``timeout_s`` passes."""
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
            messages.put((self.number, {"type": "healthy", "ok": ok, "t": time.monotonic() - t0, "port": port}))

        threading.Thread(target=poll, daemon=True, name=f"leaklab-health-{self.number}").start()
