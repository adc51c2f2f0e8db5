"""``leaklab run -- CMD ARGS...``: any program as the child (Python, Node.js, a binary).

The program runs as a scenario child does (its own process group, a memory cap, logs in
``artifacts/``, recycled by the same supervisor) and the parent records it the same way,
into the same run directory. What differs:

* memory is the whole process tree's, from outside (``samples.csv``), and each process's
  (``processes.csv``);
* ``{port}`` in the command and in ``--load URL`` is a free port on 127.0.0.1, new for
  each generation; the program is ready once that port accepts connections and
  ``--health PATH`` answers 200 (by default ``/health`` when it answers 200, else the
  first successful request to the load's path);
* steps are requests the program served (2xx/3xx responses), or seconds since it was
  ready when there is no load;
* a Python program gets the in-process probes through a bootstrap on its
  ``PYTHONPATH`` (:mod:`leaklab.runner.inprocess`): allocated blocks, gc counts, growing
  types, allocation sites and retention chains, as for a scenario;
* a Node.js program gets ``bootstrap/leaklab-node.js`` preloaded (``NODE_OPTIONS=--require``):
  the V8 heap (used, total) and the memory outside it, so the analysis can tell JS heap
  growth from native growth.

The session is the scenario runner's (:class:`leaklab.runner.session.Session`); this
module overrides its hooks: how a generation is started and what it reports.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from leaklab import probes as probe_registry
from leaklab import store, units
from leaklab.kinds import EventKind, Status
from leaklab.runner import load as load_mod
from leaklab.runner import meta as meta_mod
from leaklab.runner import parent
from leaklab.runner.generation import (
    HOST,
    ChildMemory,
    Generation,
    Message,
    Reaped,
    decode,
    in_background,
    start_reaped,
)
from leaklab.runner.inprocess import ENV as INPROCESS_ENV
from leaklab.runner.messages import Handler, MessageType
from leaklab.runner.session import Session
from leaklab.runner.spec import ChildSpec
from leaklab.scenario import ScenarioError

PORT_TOKEN = "{port}"
BOOTSTRAP_DIR = Path(__file__).with_name("bootstrap")
NODE_BOOTSTRAP = BOOTSTRAP_DIR / "leaklab-node.js"
#: Sample columns a Node.js program's bootstrap fills (empty for other programs).
NODE_COLUMNS = ("v8_heap_used", "v8_heap_total", "v8_external")
DEFAULT_HEALTH_PATH = "/health"
#: How long a program may take to listen on its port and answer its health check.
DEFAULT_READY_TIMEOUT_S = 30.0
#: Without load, a program that stays up this long has started (one that exits sooner exited at
#: once).
STARTED_AFTER_S = 1.0
#: Longest wait for the in-process bootstrap of a Python or Node.js program to report in, before
#: its start is counted from the spawn instead (a Python of another version cannot load it).
BOOTSTRAP_REPORT_WAIT_S = 10.0
_INTERPRETERS = ("python", "node")
#: How long after the program's exit its (grand)children may still report.
_EXIT_GRACE_S = 1.0
_POLL_S = 0.05
_STEPS_WRITE_S = 0.02
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
#: Exit codes for a program that never got ready (bad input), else the scenario runner's.
USAGE_EXIT = 2


@dataclass
class CommandConfig(parent.RunConfig):
    """A run of a command: ``scenario`` is the program's short name."""

    command: list[str] = field(default_factory=list)
    load_url: str | None = None  # with {port}: the program's own port
    health_path: str | None = None  # None: /health when it answers 200, else the first good request
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    bootstrap: bool = True  # Python processes start the in-process probes


@dataclass
class Program:
    """What a :class:`~leaklab.runner.parent.Prepared` needs of a scenario, for a command."""

    name: str
    path: Path | None
    description: str


@dataclass
class LoadTarget:
    port: int | None  # a fixed port from the URL, or None when it says {port}
    path: str  # path and query sent with every request


@dataclass
class CommandResult(parent.RunResult):
    usage_error: bool = False  # the program never got ready: bad input, exit 2

    @property
    def exit_code(self) -> int:
        return USAGE_EXIT if self.usage_error else parent.EXIT_CODES.get(self.status, 1)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def parse_load_url(url: str) -> LoadTarget:
    """``http://127.0.0.1:{port}/path?q`` -> where to send the load; raises ScenarioError."""
    parts = urllib.parse.urlsplit(url.replace(PORT_TOKEN, "1"))
    if parts.scheme != "http":
        raise ScenarioError(
            f"--load takes an http:// URL on 127.0.0.1 (http://127.0.0.1:{{port}}/path), not {url}"
        )
    if parts.hostname not in _LOCAL_HOSTS:
        raise ScenarioError(
            f"--load must target 127.0.0.1, not {parts.hostname}: leaklab sends load to local "
            "programs only"
        )
    try:
        port = None if PORT_TOKEN in url else (parts.port or 80)
    except ValueError:
        raise ScenarioError(f"--load has a bad port: {url}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return LoadTarget(port, path)


def program_name(command: list[str]) -> str:
    """A short name for the run directory: the script or module a interpreter runs, else the
    program."""
    name = Path(command[0]).name
    args = iter(command[1:])
    if name.startswith(("python", "node", "pypy")):
        for arg in args:
            if arg == "-c":
                return f"{name}-c"
            if arg == "-m":
                return next(args, name)
            if not arg.startswith("-"):
                return Path(arg).stem or name
    return name


def substitute(command: list[str], port: int | None) -> list[str]:
    return (
        [arg.replace(PORT_TOKEN, str(port)) for arg in command]
        if port is not None
        else list(command)
    )


def prepare(config: CommandConfig) -> parent.Prepared:
    """Check the command and the options before anything starts; raises ScenarioError."""
    if not config.command:
        raise ScenarioError("no command given: leaklab run -- CMD ARGS...")
    executable = shutil.which(config.command[0])
    if executable is None:
        raise ScenarioError(
            f"command not found: {config.command[0]!r} (not an executable file, and not on PATH)"
        )
    if config.load_url is not None:
        parse_load_url(config.load_url)
        if config.rate is None:
            raise ScenarioError(
                "--load needs a request rate: pass --rate (for example --rate 37/s)"
            )
    elif config.steps is not None:
        raise ScenarioError(
            "--steps counts requests served: it needs --load URL (without load, use --duration)"
        )
    elif config.rate is not None:
        raise ScenarioError("--rate is the load's request rate: it needs --load URL")
    if config.health_path is not None and not config.health_path.startswith("/"):
        raise ScenarioError(
            f"--health takes a path that starts with '/', got {config.health_path!r}"
        )
    length = parent.plan_length(config)
    for probe in config.probes:
        probe_registry.probe_class(probe)
    max_rss = config.max_rss or parent.default_max_rss()
    if config.recycle is not None and config.recycle.limit >= max_rss:
        raise ScenarioError(
            f"the recycle limit ({units.format_size(config.recycle.limit)}) must be below the "
            f"memory cap ({units.format_size(max_rss)}); raise --max-rss or lower --recycle"
        )
    script = next(
        (Path(a) for a in config.command[1:] if not a.startswith("-") and Path(a).is_file()), None
    )
    program = Program(
        program_name(config.command),
        (script or Path(executable)).resolve(),
        " ".join(config.command),
    )
    return parent.Prepared(
        config,
        program,
        None,
        {},
        config.rate,
        length.duration_s,
        length.steps,  # type: ignore[arg-type]
        length.warmup,
        max_rss,
        length.sample_interval_s,
        length.until_confident,
    )


# -- one generation: the program and what it reports -----------------------------------------------


def _packet_reader(sock: socket.socket, generation: int, out: queue.Queue[Message]) -> None:
    """The in-process probes' messages, one per packet, until every process closed the socket."""
    with sock:
        while True:
            try:
                data = sock.recv(1 << 20)
            except OSError:
                break
            if not data:
                break
            message = decode(data)
            if isinstance(message, dict) and message.get("kind") == EventKind.PROTOCOL_ERROR:
                out.put((generation, message))
                continue
            out.put((generation, {"type": "inprocess", "body": message}))
    out.put((generation, None))


class CommandGeneration(Generation):
    """One start of the program: its process tree, its port, and its readiness."""

    def __init__(
        self,
        number: int,
        started: Reaped,
        t_spawn: float,
        port: int | None,
        argv: list[str],
    ) -> None:
        super().__init__(
            number,
            started.proc,
            started.pid,
            None,
            started.lifeline_fd,
            t_spawn,
            include_children=True,
        )
        self.port_planned = port
        self.argv = argv
        self.exited_at: float | None = (
            None  # monotonic time the program's own process was seen gone
        )
        self.probed_pid: int | None = None  # the process whose in-process probes the run records
        self.probe_switched = False
        self.ignored_messages = 0
        self.inprocess: dict[str, Any] = {}  # its latest in-process counters
        self.served = 0  # requests it answered with 2xx/3xx
        self.server_errors = 0  # 5xx answers
        self.health_path: str | None = None
        self.stopped = threading.Event()
        self.probes_began = threading.Event()  # its in-process bootstrap reported in
        self.probes_began_at = 0.0  # time.monotonic() when it did

    @classmethod
    def start(
        cls,
        number: int,
        argv: list[str],
        env: dict[str, str],
        spec: ChildSpec | None,
        messages: queue.Queue[Message],
        stdout: IO[bytes],
        stderr: IO[bytes],
        t_spawn: float,
        port: int | None,
    ) -> CommandGeneration:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(env)
        if spec is not None:
            env[INPROCESS_ENV] = json.dumps(spec.replace(report_fd=theirs.fileno()).to_dict())
        try:
            started = start_reaped(argv, (theirs.fileno(),), stdout, stderr, env)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        in_background(f"leaklab-command-reader-{number}", _packet_reader, ours, number, messages)
        return cls(number, started, t_spawn, port, argv)

    @property
    def finished(self) -> bool:
        """Its own process is gone, and its children have closed the socket (or had a moment to)."""
        if self.proc.poll() is None:
            return False
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        return self.eof or time.monotonic() - self.exited_at > _EXIT_GRACE_S

    def await_port(self, messages: queue.Queue[Message], t0: float, timeout_s: float) -> None:
        """From a thread: ``hello`` once the port accepts connections, ``not_listening`` after
        ``timeout_s``."""
        port = self.port_planned

        def wait() -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.alive and not self.stopped.is_set():
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((HOST, port), timeout=0.5),
                ):
                    messages.put(
                        (
                            self.number,
                            {
                                "type": "hello",
                                "pid": self.pid,
                                "port": port,
                                "t": time.monotonic() - t0,
                            },
                        )
                    )
                    return
                time.sleep(_POLL_S)
            if self.alive and not self.stopped.is_set():
                messages.put(
                    (
                        self.number,
                        {
                            "type": "not_listening",
                            "port": port,
                            "t": time.monotonic() - t0,
                            "timeout_s": timeout_s,
                        },
                    )
                )

        threading.Thread(target=wait, daemon=True, name=f"leaklab-port-{self.number}").start()

    def await_start(self, messages: queue.Queue[Message], t0: float, bootstrapped: bool) -> None:
        """From a thread (no load, so no port to wait for): ``hello`` once the program has
        stayed up for ``STARTED_AFTER_S``; one that exits sooner "exited at once".

        A Python or Node.js program runs its own code only after the in-process bootstrap has
        loaded in it, which a busy machine stretches past ``STARTED_AFTER_S``: for such a
        program (``bootstrapped``), the time counts from the bootstrap's report."""

        def gone(wait_s: float) -> bool:
            return self.stopped.wait(max(0.0, wait_s)) or not self.alive

        def wait() -> None:
            if gone(STARTED_AFTER_S):
                return
            if bootstrapped and not self.probes_began.is_set() and self._runs_an_interpreter():
                deadline = time.monotonic() + BOOTSTRAP_REPORT_WAIT_S
                while not self.probes_began.wait(_POLL_S):
                    if gone(0.0):
                        return
                    if time.monotonic() >= deadline:
                        break
            if self.probes_began.is_set() and gone(
                self.probes_began_at + STARTED_AFTER_S - time.monotonic()
            ):
                return
            messages.put(
                (self.number, {"type": "hello", "pid": self.pid, "t": time.monotonic() - t0})
            )

        threading.Thread(target=wait, daemon=True, name=f"leaklab-start-{self.number}").start()

    def _runs_an_interpreter(self) -> bool:
        """Whether a process of the program is a Python or Node.js interpreter."""
        try:
            names = [proc.name().lower() for proc in self.memory.processes()]
        except psutil.Error:
            return False
        return any(name.startswith(_INTERPRETERS) for name in names)

    def start_ticks(
        self, messages: queue.Queue[Message], interval_s: float, steps_file: Path, steps_now: Any
    ) -> None:
        """From a thread: a ``tick`` every interval (the parent samples), and the step count for
        the in-process probes in ``steps_file`` every 20 ms (their windows are counted in steps)."""

        def tick() -> None:
            next_tick = time.monotonic()
            while not self.stopped.is_set() and self.alive:
                now = time.monotonic()
                if now >= next_tick:
                    messages.put((self.number, {"type": "tick"}))
                    next_tick += interval_s
                    if next_tick < now:
                        next_tick = now + interval_s
                with contextlib.suppress(OSError):
                    tmp = steps_file.with_suffix(".tmp")
                    tmp.write_text(str(int(steps_now())))
                    os.replace(tmp, steps_file)
                self.stopped.wait(min(_STEPS_WRITE_S, max(0.0, next_tick - time.monotonic())))

        threading.Thread(target=tick, daemon=True, name=f"leaklab-tick-{self.number}").start()

    def check_health(
        self,
        messages: queue.Queue[Message],
        t0: float,
        timeout_s: float,
        explicit: str | None = None,
        load_path: str = "/",
    ) -> None:
        """From a thread: ``healthy`` once ``explicit`` answers 200, or (no --health) ``/health``
        answers 200 or, if it does not, the load's path answers 2xx/3xx."""
        port = self.port

        def answer(path: str) -> int | None:
            connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
            try:
                connection.request("GET", path)
                return connection.getresponse().status
            except OSError:
                return None
            finally:
                connection.close()

        def poll() -> None:
            deadline = time.monotonic() + timeout_s
            ok_path = None
            while (
                time.monotonic() < deadline
                and self.alive
                and port is not None
                and not self.stopped.is_set()
            ):
                if explicit is not None:
                    if answer(explicit) == 200:
                        ok_path = explicit
                        break
                elif answer(DEFAULT_HEALTH_PATH) == 200:
                    ok_path = DEFAULT_HEALTH_PATH
                    break
                else:
                    status = answer(load_path)
                    if status is not None and 200 <= status < 400:
                        ok_path = load_path
                        break
                time.sleep(_POLL_S)
            self.health_path = ok_path
            messages.put(
                (
                    self.number,
                    {
                        "type": "healthy",
                        "ok": ok_path is not None,
                        "path": ok_path,
                        "t": time.monotonic() - t0,
                        "port": port,
                    },
                )
            )

        threading.Thread(target=poll, daemon=True, name=f"leaklab-health-{self.number}").start()


# -- the session ---------------------------------------------------------------------------------


class CommandSession(Session):
    """The scenario runner's session, with the program's generations: it overrides the
    session's hooks (``spawn``, the ``hello`` and ``healthy`` handlers, ``stop_generation``,
    ``enforce_deadlines``, ``on_exit``, ``final_status``, ``finish``) and handles three more
    messages: ``tick`` (time to sample), ``inprocess`` (the in-process probes) and
    ``not_listening``."""

    config: CommandConfig

    def __init__(
        self, *args: Any, target: LoadTarget | None, steps_dir: Path, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.target = target
        self.steps_dir = steps_dir
        self.lock = threading.Lock()
        self.not_ready: str | None = None  # why the program never got ready, if it did not

    @property
    def uses_port(self) -> bool:
        return (
            self.target is not None
            and self.target.port is None
            or any(PORT_TOKEN in a for a in self.config.command)
        )

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.config.bootstrap:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(BOOTSTRAP_DIR), *filter(None, [env.get("PYTHONPATH")])]
            )
            env["LEAKLAB_SYS_PATH"] = os.pathsep.join(p for p in sys.path if p)
            env["LEAKLAB_PYTHON"] = "{}.{}".format(*sys.version_info[:2])
            require = f"--require {NODE_BOOTSTRAP}"
            env["NODE_OPTIONS"] = " ".join(filter(None, [env.get("NODE_OPTIONS"), require]))
        return env

    def _inprocess_spec(self, number: int) -> ChildSpec | None:
        if not self.config.bootstrap:
            return None
        artifacts = (
            self.writer.artifacts if number == 0 else self.writer.artifacts / f"gen-{number}"
        )
        artifacts.mkdir(exist_ok=True)
        return ChildSpec(
            t0=self.t0,
            interval=self.config.interval_s,
            probes=self.config.probes,
            probe_options=self.config.probe_options,
            artifacts=str(artifacts),
            warmup=self.prepared.warmup if number == 0 else {},
            plan={"steps": self.prepared.steps, "duration_s": self.prepared.duration_s},
            program=str(self.prepared.scenario.path) if self.prepared.scenario.path else None,
            steps_file=str(self.steps_dir / f"gen-{number}"),
        )

    def spawn(self) -> Generation:
        number = len(self.generations)
        self.base_steps, self.base_errors = self.steps, self.errors
        port = free_port() if self.uses_port else (self.target.port if self.target else None)
        argv = substitute(self.config.command, port)
        gen = CommandGeneration.start(
            number,
            argv,
            self._environment(),
            self._inprocess_spec(number),
            self.messages,
            self.stdout,
            self.stderr,
            self.now(),
            port,
        )
        self.generations.append(gen)
        self.current = gen
        self.writer.event(
            EventKind.START,
            gen.t_spawn,
            pid=gen.pid,
            argv=argv,
            **({"port": port} if port else {}),
            **self.tag(gen),
        )
        if self.config.serve:
            gen.await_port(self.messages, self.t0, self.config.ready_timeout_s)
        else:
            gen.await_start(self.messages, self.t0, bootstrapped=self.config.bootstrap)
        return gen

    # -- hooks of the scenario session --------------------------------------------------------

    def load_config(self) -> load_mod.LoadConfig:
        assert self.target is not None
        return load_mod.LoadConfig(
            rate=float(self.prepared.rate or 0),
            duration_s=self.prepared.duration_s,
            max_requests=self.prepared.steps,
            timeout_s=self.config.request_timeout_s,
            path=self.target.path,
        )

    def record_request(self, row: dict[str, Any]) -> None:
        self.writer.request(row)
        number = row.get("generation")
        if number is None or number >= len(self.generations):
            return
        gen = self.generations[number]
        status = row.get("status")
        if status is not None and 200 <= status < 400:
            gen.served += 1  # type: ignore[attr-defined]
        elif status is not None and status >= 500:
            gen.server_errors += 1  # type: ignore[attr-defined]

    def _steps_of(self, gen: CommandGeneration) -> int:
        if self.config.serve:
            return gen.served
        return int(self.now() - gen.t_healthy) if gen.t_healthy is not None else 0

    def _start_ticks(self, gen: CommandGeneration) -> None:
        gen.start_ticks(
            self.messages,
            self.prepared.sample_interval_s,
            self.steps_dir / f"gen-{gen.number}",
            lambda: self._steps_of(gen),
        )

    # -- messages ------------------------------------------------------------------------------

    def message_handlers(self) -> dict[str, Handler]:
        return {
            **super().message_handlers(),
            MessageType.TICK: self.handle_tick,
            MessageType.INPROCESS: self.handle_inprocess,
            MessageType.NOT_LISTENING: self.handle_not_listening,
        }

    def handle_tick(self, gen: Generation, _message: dict[str, Any]) -> None:
        """Time to sample: the program's steps so far and its in-process counters, its processes'
        memory."""
        assert isinstance(gen, CommandGeneration)
        if gen is self.current and gen.alive and gen.t_healthy is not None and not gen.finishing:
            sample = {
                "type": "sample",
                "steps": self._steps_of(gen),
                "errors": gen.server_errors,
                **gen.inprocess,
            }
            self.handle_sample(gen, sample)
            self._write_processes(gen)

    def handle_hello(self, gen: Generation, message: dict[str, Any]) -> None:
        """The program listens on its port (with load), or has stayed up (without)."""
        assert isinstance(gen, CommandGeneration)
        if not self.config.serve:
            self._start_ticks(gen)
            super().handle_hello(gen, message)
            return
        gen.t_ready = self.now()
        gen.port = message.get("port")
        self.writer.event(
            EventKind.READY, message.get("t"), pid=gen.pid, port=gen.port, **self.tag(gen)
        )
        timeout = (
            self.config.recycle.health_timeout_s
            if self.config.recycle
            else self.config.ready_timeout_s
        )
        gen.check_health(
            self.messages,
            self.t0,
            timeout,
            self.config.health_path,
            self.target.path if self.target else "/",
        )

    def handle_health(self, gen: Generation, message: dict[str, Any]) -> None:
        assert isinstance(gen, CommandGeneration)
        if message.get("ok"):
            self._start_ticks(gen)
        elif gen.alive and gen.stop_requested is None:
            load_path = self.target.path if self.target else "/"
            expected = (
                f"{self.config.health_path} with 200"
                if self.config.health_path
                else f"{DEFAULT_HEALTH_PATH} with 200 nor {load_path} with 2xx/3xx"
            )
            self._not_ready(
                f"the program listened on {HOST}:{gen.port} but never answered {expected}"
            )
        super().handle_health(gen, message)

    def handle_not_listening(self, gen: Generation, message: dict[str, Any]) -> None:
        if gen.alive and gen.stop_requested is None:
            timeout = units.format_duration(float(message.get("timeout_s") or 0))
            self._not_ready(
                f"the program never listened on {HOST}:{message.get('port')} within {timeout} "
                f"(does the command take its port from {PORT_TOKEN}?)"
            )
            super().handle_health(
                gen,
                {
                    "type": "healthy",
                    "ok": False,
                    "t": message.get("t"),
                    "port": message.get("port"),
                },
            )

    def _not_ready(self, why: str) -> None:
        if self.supervisor is None and self.state.abort(
            Status.FAILED, f"{why}; see artifacts/child-stderr.log"
        ):
            self.not_ready = self.state.message

    def handle_inprocess(self, gen: Generation, message: dict[str, Any]) -> None:
        """A message of the in-process probes: counters of the process they follow, or an event."""
        assert isinstance(gen, CommandGeneration)
        body = message["body"]
        kind = body.get("type")
        pid = body.get("pid")
        if kind == MessageType.HELLO:
            if not gen.probes_began.is_set():
                gen.probes_began_at = time.monotonic()
                gen.probes_began.set()
            self.writer.event(
                EventKind.INPROCESS_START,
                body.get("t"),
                pid=pid,
                ppid=body.get("ppid"),
                forked=body.get("forked"),
                argv=body.get("argv"),
                **self.tag(gen),
            )
            if gen.probed_pid is None or (
                body.get("forked") and body.get("ppid") == gen.probed_pid and not gen.probe_switched
            ):
                gen.probe_switched = gen.probed_pid is not None
                gen.probed_pid = pid
                gen.inprocess = {}
            return
        if pid != gen.probed_pid:
            gen.ignored_messages += 1
            return
        if kind == MessageType.SAMPLE:
            gen.inprocess = {
                k: v
                for k, v in body.items()
                if k not in ("type", "t", "steps", "errors", "ack", "pid")
            }
        elif kind == MessageType.EVENT:
            self.handle_event(gen, body)

    def _write_processes(self, gen: CommandGeneration) -> None:
        for row in tree_rows(gen.memory, self.now(), gen.number):
            self.writer.process(row)

    # -- stopping and the end ------------------------------------------------------------------

    def stop_generation(self, gen: Generation, why: str, sig: int, timeout_s: float) -> None:
        # What it shuts down is not what it held while it served: no samples of it from now on.
        gen.finishing = True
        super().stop_generation(gen, why, sig, timeout_s)

    def enforce_deadlines(self) -> None:
        super().enforce_deadlines()
        if (
            not self.config.serve
            and self.deadline is not None
            and time.monotonic() >= self.deadline
            and self.state.running
        ):
            self.stop_service()

    def on_exit(self, gen: Generation) -> None:
        assert isinstance(gen, CommandGeneration)
        gen.stopped.set()
        if gen.t_healthy is None and gen.stop_requested is None and self.supervisor is None:
            code = gen.proc.returncode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            if self.state.abort(
                Status.FAILED,
                f"the program exited ({how}) before it was ready"
                f"{_last_line(self.writer.artifacts)}",
            ):
                self.not_ready = self.state.message
        super().on_exit(gen)

    def final_status(self, done: dict[str, Any], returncode: int | None) -> tuple[Status, str]:
        final = self.current
        if (
            self.state.running
            and final is not None
            and final.proc.poll() == 0
            and self.supervisor is None
        ):
            return Status.COMPLETED, ""  # a program that finished its work on its own
        return super().final_status(done, returncode)

    def finish(self, ended: Any) -> CommandResult:
        result = super().finish(ended)
        ignored = sum(getattr(g, "ignored_messages", 0) for g in self.generations)
        if ignored:
            self.writer.update_meta(
                counters={**self.writer.meta.get("counters", {}), "inprocess_ignored": ignored}
            )
        return CommandResult(
            **result.__dict__,
            usage_error=self.not_ready is not None
            and not any(g.t_healthy is not None for g in self.generations),
        )


def tree_rows(memory: ChildMemory, t: float, generation: int) -> list[dict[str, Any]]:
    """One ``processes.csv`` row per process of the tree ``memory`` follows (gone ones skipped)."""
    try:
        procs = memory.processes()
    except psutil.Error:
        return []
    rows = []
    for proc in procs:
        try:
            with proc.oneshot():
                info = proc.memory_full_info() if memory.uss_available else proc.memory_info()
                rows.append(
                    {
                        "t": t,
                        "generation": generation,
                        "pid": proc.pid,
                        "ppid": proc.ppid(),
                        "name": proc.name(),
                        "rss": info.rss,
                        "uss": getattr(info, "uss", None),
                    }
                )
        except psutil.Error:
            continue
    return rows


def _last_line(artifacts: Path) -> str:
    """The last line the program wrote to stderr, to show with the failure."""
    try:
        lines = (
            (artifacts / "child-stderr.log")
            .read_bytes()[-4096:]
            .decode(errors="replace")
            .strip()
            .splitlines()
        )
    except OSError:
        return "; see artifacts/child-stderr.log"
    last = lines[-1].strip() if lines else ""
    clean = "".join(ch if ch.isprintable() else "?" for ch in last)[:200]
    return f": {clean}" if clean else "; it wrote nothing to stderr"


def command_config(
    config: CommandConfig, prepared: parent.Prepared, target: LoadTarget | None
) -> dict[str, Any]:
    """``meta.json`` ``config`` of a command run."""
    load = None
    if target is not None:
        load = {
            "rate": prepared.rate,
            "duration_s": prepared.duration_s,
            "max_requests": prepared.steps,
            "timeout_s": config.request_timeout_s,
            "path": target.path,
            "url": config.load_url,
        }
    return {
        **meta_mod.length_config(config, prepared),
        "include_children": True,
        "profile": config.profile,
        "probes": config.probes,
        "serve": config.serve,
        "health_path": config.health_path,
        "recycle": config.recycle.to_dict() if config.recycle else None,
        "load": load,
        "steps_are": "requests served" if target is not None else "seconds",
    }


def command_meta(
    config: CommandConfig, prepared: parent.Prepared, target: LoadTarget | None
) -> dict[str, Any]:
    """``meta.json`` of a command run as it starts."""
    program: Program = prepared.scenario  # type: ignore[assignment]
    about = {
        "scenario": program.name,
        "scenario_path": str(program.path) if program.path else None,
        "description": program.description,
        "variant": None,
        "params": {},
        "source": "command",
        "command": config.command,
    }
    return meta_mod.build_meta(about, config.argv, command_config(config, prepared, target))


def run(
    config: CommandConfig, prepared: parent.Prepared | None = None, on_sample: Any = None
) -> CommandResult:
    """Run the command, record it, and return how it ended; never raises for what the program
    does."""
    prepared = prepared or prepare(config)
    target = parse_load_url(config.load_url) if config.load_url else None
    writer = store.RunWriter(
        store.new_run_dir(config.out, prepared.scenario.name, None),
        command_meta(config, prepared, target),
        [*store.BASE_COLUMNS, *probe_registry.columns_of(config.probes), *NODE_COLUMNS],
    )
    t0 = time.monotonic()
    stdout = open(writer.artifacts / "child-stdout.log", "wb")
    stderr = open(writer.artifacts / "child-stderr.log", "wb")
    steps_dir = Path(tempfile.mkdtemp(prefix="leaklab-steps-"))
    session = CommandSession(
        config,
        prepared,
        writer,
        None,
        t0,
        on_sample,
        stdout,
        stderr,
        target=target,
        steps_dir=steps_dir,
    )
    try:
        try:
            session.spawn()
        except OSError as exc:
            session.state.abort(
                Status.FAILED, f"cannot start {config.command[0]!r}: {exc.strerror or exc}"
            )
            session.not_ready = session.state.message
        else:
            session.loop()
    finally:
        session.shutdown()
        for gen in session.generations:
            gen.stopped.set()  # type: ignore[attr-defined]
        stdout.close()
        stderr.close()
        session.progress.close()
        result = session.finish(store.utc_now())
        writer.close()
        shutil.rmtree(steps_dir, ignore_errors=True)
    return result
