"""The reaper: a small process between the parent and each child, so that nothing a run
started outlives it.

::

    leaklab parent ── reaper (PR_SET_CHILD_SUBREAPER) ── child (own session) ── what the scenario
    starts

The kernel hands every orphan below a *subreaper* to it instead of to pid 1, so a
grandchild that started its own session (``start_new_session=True``, a double-forked
daemon) still ends up below the reaper, and the reaper can find it. The reaper:

* starts the child in its own session and tells the parent the child's pid (or why it could
  not start it);
* when the child exits, kills every process left below it, then exits with the child's
  status (the same exit code, or the same signal), so the parent sees the child's end;
* when the parent goes away (its *lifeline* pipe reaches end of file, whether the parent
  closed it or died, SIGKILL included), kills the child's group and everything below it;
* copies the child's stdout and stderr into the run's log files, capped: the first
  ``--log-head`` bytes and the last ``--log-tail`` bytes of each stream are kept, with one
  line in between saying how many bytes were dropped.

It is started as a script (``python reaper.py ...``), not as ``-m leaklab...``: it imports
only the standard library and psutil, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36
#: Rounds of "find what is left below us, kill it, reap it" before giving up.
_KILL_ROUNDS = 50
#: Seconds to wait for the log pipes to close after every writer was killed.
_DRAIN_S = 2.0
_CHUNK = 1 << 16


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class CappedLog:
    """One child stream copied to a file: the head as it comes, the tail held until the end."""

    def __init__(self, out_fd: int, head: int, tail: int) -> None:
        self.out_fd = out_fd
        self.head_left = head
        self.tail_cap = tail
        self.tail = bytearray()
        self.dropped = 0
        self.head = head

    def write(self, data: bytes) -> None:
        if self.head_left > 0:
            now, data = data[: self.head_left], data[self.head_left :]
            self.head_left -= len(now)
            _write_all(self.out_fd, now)
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.tail_cap
        if excess > 0:
            self.dropped += excess
            del self.tail[:excess]

    def close(self) -> None:
        if self.dropped:
            note = (
                f"\n[leaklab: {self.dropped:,} bytes dropped here; the first {self.head:,} and the "
                f"last {self.tail_cap:,} bytes of this stream are kept]\n"
            )
            _write_all(self.out_fd, note.encode())
        _write_all(self.out_fd, bytes(self.tail))
        self.tail.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:
            return  # the log file is gone (disk full, closed): the run goes on without it


def _descendants() -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process().children(recursive=True)]
    except psutil.Error:
        return []


def _reap(statuses: dict[int, int]) -> None:
    """Collect every exited child (ours, or an orphan handed to us); keep their statuses."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return
        statuses[pid] = status


def kill_everything_below(statuses: dict[int, int], child_pgid: int | None) -> list[int]:
    """SIGKILL the child's group and every process below the reaper until none is left; the
    pids killed, each once (a process that takes more than a round to die is signalled again)."""
    killed: dict[int, None] = {}
    if child_pgid is not None:
        with contextlib.suppress(OSError):
            os.killpg(child_pgid, signal.SIGKILL)
    for _ in range(_KILL_ROUNDS):
        _reap(statuses)
        left = _descendants()
        if not left:
            break
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed[pid] = None
        time.sleep(0.01)
    _reap(statuses)
    return list(killed)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="leaklab-reaper")
    parser.add_argument(
        "--lifeline", type=int, required=True, help="read end of a pipe the parent holds open"
    )
    parser.add_argument("--pid-fd", type=int, required=True, help="where to write the child's pid")
    parser.add_argument(
        "--pass-fd", type=int, action="append", default=[], help="a descriptor the child inherits"
    )
    parser.add_argument("--log-head", type=int, required=True)
    parser.add_argument("--log-tail", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def _catch_signals(stop: list[int]) -> int:
    """Stop requests go to ``stop``; every signal wakes ``select`` through the returned fd."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the wakeup fd
    return wake_r


class _Reaper:
    """The loop: copy the child's output into capped logs, watch the lifeline, reap, and once
    the child is gone kill what it left and drain its pipes for a moment."""

    def __init__(
        self,
        args: argparse.Namespace,
        child: subprocess.Popen[bytes],
        out_r: int,
        err_r: int,
        wake_r: int,
        stop: list[int],
    ) -> None:
        self.args, self.child, self.err_r, self.wake_r, self.stop = args, child, err_r, wake_r, stop
        self.logs = {
            out_r: CappedLog(1, args.log_head, args.log_tail),
            err_r: CappedLog(2, args.log_head, args.log_tail),
        }
        self.statuses: dict[int, int] = {}
        self.lifeline_open = True
        self.child_status: int | None = None
        self.drain_until: float | None = None

    def run(self) -> int:
        """The child's wait status, once it is gone and its output is in."""
        while self.logs or self.child_status is None:
            watched = [*self.logs, self.wake_r] + (
                [self.args.lifeline] if self.lifeline_open else []
            )
            timeout = (
                0.5 if self.drain_until is None else max(0.0, self.drain_until - time.monotonic())
            )
            try:
                ready, _, _ = select.select(watched, [], [], timeout)
            except InterruptedError:
                ready = []
            for fd in ready:
                self._readable(fd)
            _reap(self.statuses)
            if self.child_status is None and self.stop:
                kill_everything_below(self.statuses, self.child.pid)
                if self.child.pid not in self.statuses:
                    self.statuses[self.child.pid] = os.waitpid(self.child.pid, 0)[1]
            if self.child_status is None and self.child.pid in self.statuses:
                self._child_gone()
            if self.drain_until is not None and time.monotonic() >= self.drain_until:
                for fd, log in list(self.logs.items()):
                    log.close()
                    os.close(fd)
                self.logs.clear()
        assert self.child_status is not None
        return self.child_status

    def _readable(self, fd: int) -> None:
        if fd == self.wake_r:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                os.read(self.wake_r, 512)
        elif fd in self.logs:
            try:
                data = os.read(fd, _CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if data:
                self.logs[fd].write(data)
            else:
                self.logs.pop(fd).close()
                os.close(fd)
        elif fd == self.args.lifeline:
            with contextlib.suppress(OSError):
                if os.read(self.args.lifeline, 1):
                    return
            self.lifeline_open = False  # the parent is done or dead: nothing of the run may stay
            self.stop.append(0)

    def _child_gone(self) -> None:
        self.child_status = self.statuses[self.child.pid]
        self.child.returncode = os.waitstatus_to_exitcode(self.child_status)
        killed = kill_everything_below(self.statuses, self.child.pid)
        if killed:
            message = (
                f"leaklab: killed {len(killed)} process(es) the scenario left running: "
                f"{killed[:20]}\n"
            )
            if self.err_r in self.logs:
                self.logs[self.err_r].write(message.encode())
            else:
                _write_all(2, message.encode())
        self.drain_until = time.monotonic() + _DRAIN_S


def _exit_as(child_status: int) -> int:
    """Exit as the child did: by the same signal (without a core dump), or with its code."""
    if os.WIFSIGNALED(child_status):
        sig = os.WTERMSIG(child_status)
        with contextlib.suppress(ValueError, OSError):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        time.sleep(1)
        return 128 + sig
    return os.waitstatus_to_exitcode(child_status)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    stop: list[int] = []
    wake_r = _catch_signals(stop)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        child = subprocess.Popen(
            command,
            pass_fds=tuple(args.pass_fd),
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
        )
    except OSError as exc:
        os.write(2, f"leaklab: could not start the child: {exc}\n".encode())
        # The parent reads why on the pid pipe: a program that cannot start is a clear error.
        os.write(args.pid_fd, f"error {exc.strerror or exc}\n".encode())
        os.close(args.pid_fd)
        return 127
    for fd in (out_w, err_w, *args.pass_fd):
        os.close(fd)
    os.write(args.pid_fd, f"{child.pid} {int(subreaper)}\n".encode())
    os.close(args.pid_fd)
    return _exit_as(_Reaper(args, child, out_r, err_r, wake_r, stop).run())


if __name__ == "__main__":
    sys.exit(main())
