"""``leaklab watch --pm2 NAME``: follow a PM2-managed app across its restarts.

PM2's own process list is read through its API (``bootstrap/pm2-list.js``: one
connection to the daemon of ``PM2_HOME``, one JSON line per interval): each app's pid,
status, restart count, start time and PM2's memory reading. Every distinct pid is a
generation; the process tree's memory is sampled from outside as for ``watch PID``,
with PM2's own reading beside it (``pm2_memory``, ``pm2_restarts`` columns).

A new pid is written as a ``restart`` event, so the recycling analysis
(:mod:`leaklab.analysis.recycling`) reads a PM2 app as it reads a ``--recycle`` run:
growth within each generation, time between restarts, restarts/h, memory after each
restart (:mod:`leaklab.analysis.generations`: baseline creep), and, with ``--health``,
downtime and success rate. A restart counts as a memory restart when PM2's last reading of the
old process was at or above 90 % of ``max_memory_restart`` (PM2 refreshes that reading
once per check, ``PM2_WORKER_INTERVAL``, so it lags), else as a plain restart. The
restart's ``rss`` is leaklab's own last reading of the old process (every ``--interval``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import leaklab
from leaklab import store
from leaklab.runner.child import die_with_parent
from leaklab.runner.supervisor import PM2_CHECK_INTERVAL_S, PM2_KILL_TIMEOUT_S
from leaklab.runner.watch import (
    Observation,
    WatchConfig,
    Watcher,
    WatchError,
    WatchResult,
    check_config,
)

LISTER = Path(__file__).with_name("bootstrap") / "pm2-list.js"
#: Near enough to the limit that PM2's next reading would have been over it.
MEMORY_RESTART_SHARE = 0.9
_FIRST_LIST_TIMEOUT_S = 30.0
#: Listings in a row without the app before the watch ends (it was deleted from PM2).
GONE_AFTER = 5
PM2_WORKER_INTERVAL_MS = PM2_CHECK_INTERVAL_S * 1000


def find_pm2(explicit: str | None = None) -> Path:
    """The pm2 program: ``explicit``, the project's ``.venv/node`` one, else pm2 on PATH."""
    candidates = (
        [explicit]
        if explicit
        else [
            Path.cwd() / ".venv/node/node_modules/.bin/pm2",
            Path(leaklab.__file__).resolve().parent.parent / ".venv/node/node_modules/.bin/pm2",
            shutil.which("pm2"),
        ]
    )
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise WatchError(
        "pm2 not found: `make` installs it into .venv/node, or pass --pm2-bin PATH"
        if not explicit
        else f"--pm2-bin: no such file: {explicit}"
    )


def pm2_module_dir(pm2_bin: Path) -> Path:
    """The pm2 package folder that ``pm2_bin`` runs (its ``.bin`` entry is a link into it)."""
    real = pm2_bin.resolve()
    for folder in real.parents:
        if (folder / "package.json").is_file() and folder.name == "pm2":
            return folder
    raise WatchError(f"cannot find the pm2 package behind {pm2_bin}")


class PM2List:
    """A long-running reader of PM2's process list; ``latest`` is the newest listing."""

    def __init__(self, pm2_bin: Path, interval_s: float) -> None:
        node = shutil.which("node")
        if node is None:
            raise WatchError(
                "node not found: PM2 runs on Node.js (the Makefile set-up installs it)"
            )
        self.proc = subprocess.Popen(
            [node, str(LISTER), str(pm2_module_dir(pm2_bin)), str(interval_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        self.latest: dict[str, Any] | None = None
        self.error: str | None = None
        self.fresh = threading.Event()
        threading.Thread(target=self._read, daemon=True, name="leaklab-pm2-list").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # PM2 prints banners of its own
            if "error" in data:
                self.error = str(data["error"])
            else:
                self.latest = data
            self.fresh.set()
        self.fresh.set()

    def app(self, name: str) -> dict[str, Any] | None:
        listing = self.latest or {}
        return next((a for a in listing.get("apps", []) if a.get("name") == name), None)

    def names(self) -> list[str]:
        return [str(a.get("name")) for a in (self.latest or {}).get("apps", [])]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PM2Source:
    """What :class:`~leaklab.runner.watch.Watcher` asks each interval: the app's pid now."""

    def __init__(self, name: str, listing: PM2List, wall_t0: float, t0: float) -> None:
        self.name = name
        self.listing = listing
        self.wall_t0 = wall_t0  # time.time() at the watcher's t0
        self.t0 = t0
        self.pid: int | None = None
        self.last_seen_t: float | None = None
        self.last_memory: float | None = None
        self.first_restarts: int | None = None
        self.restarts: int | None = None
        self.missing = 0

    def observe(self) -> Observation:
        app = self.listing.app(self.name)
        if app is None:
            self.missing += 1
            return Observation(None, gone=self.missing >= GONE_AFTER)
        self.missing = 0
        restarts = int(app.get("restarts") or 0)
        if self.first_restarts is None:
            self.first_restarts = restarts
        self.restarts = restarts
        pid = int(app.get("pid") or 0)
        online = app.get("status") == "online" and pid > 0
        extra = {"pm2_memory": app.get("memory"), "pm2_restarts": restarts}
        if not online:
            return Observation(None, extra)
        info: dict[str, Any] = {"pm2_restarts": restarts, "pm2_status": app.get("status")}
        if self.pid is not None and pid != self.pid:
            limit = app.get("max_memory_restart")
            memory = self.last_memory
            near = (
                bool(limit) and memory is not None and memory >= MEMORY_RESTART_SHARE * float(limit)
            )
            started = (
                (float(app["started_at_ms"]) / 1000 - self.wall_t0)
                if app.get("started_at_ms")
                else None
            )
            trigger = (
                self.last_seen_t if self.last_seen_t is not None else time.monotonic() - self.t0
            )
            info["restart_reason"] = "memory" if near else "restart"
            info["restart"] = {
                "pm2_memory": memory,
                "limit": limit,
                "mode": "restart",
                "pm2_restarts": restarts,
                "healthy_after_s": round(started - trigger, 6)
                if started and started >= trigger
                else None,
            }
            info["restart"] = {k: v for k, v in info["restart"].items() if v is not None}
            # the restart is written at the trigger: when the old process was last seen
            info["restart_t"] = trigger
        if pid == self.pid or self.pid is None or "restart_reason" in info:
            self.pid = pid
            self.last_seen_t = time.monotonic() - self.t0
            self.last_memory = float(app["memory"]) if app.get("memory") is not None else None
        return Observation(pid, extra, info)


class PM2Result(WatchResult):
    pm2: dict[str, Any] | None = None


def _find_app(listing: PM2List, name: str) -> dict[str, Any]:
    """The app ``name`` in PM2's first answer; WatchError when PM2 is silent or has no such app."""
    if not listing.fresh.wait(_FIRST_LIST_TIMEOUT_S) or listing.latest is None:
        raise WatchError(
            f"PM2 did not answer within {_FIRST_LIST_TIMEOUT_S:g}s"
            + (f": {listing.error}" if listing.error else "")
        )
    app = listing.app(name)
    if app is None:
        known = ", ".join(listing.names()) or "none"
        raise WatchError(
            f"no PM2 app named {name!r} (PM2_HOME={os.environ.get('PM2_HOME', '~/.pm2')}; "
            f"apps: {known})"
        )
    return app


def _recycle_settings(limit: Any) -> dict[str, Any]:
    """PM2's recycling of an app with ``max_memory_restart`` = ``limit``, as ``--recycle``
    records it."""
    # PM2's check: its worker's interval as this environment sets it (the daemon's own may
    # differ)
    check_s = float(os.environ.get("PM2_WORKER_INTERVAL") or PM2_WORKER_INTERVAL_MS) / 1000
    return {
        "limit": limit,
        "mode": "restart",
        "kill_signal": "SIGINT",
        "check_interval_s": check_s,
        "kill_timeout_s": PM2_KILL_TIMEOUT_S,
        "by": "pm2",
    }


def watch_app(name: str, config: WatchConfig, pm2_bin: str | None = None) -> WatchResult:
    """Follow the PM2 app ``name``; raises WatchError when PM2 or the app is not there."""
    check_config(config)
    binary = find_pm2(pm2_bin)
    listing = PM2List(binary, config.interval_s)
    try:
        app = _find_app(listing, name)
        limit = app.get("max_memory_restart")
        meta = {
            "source": "pm2",
            "pm2": {
                "name": name,
                "pm_id": app.get("pm_id"),
                "bin": str(binary),
                "home": os.environ.get("PM2_HOME"),
                "exec_mode": app.get("exec_mode"),
                "max_memory_restart": limit,
                "restarts_at_start": app.get("restarts"),
            },
        }
        watcher = Watcher(
            config,
            f"pm2-{store.slug(name)}",
            meta,
            lambda: source.observe(),
            extra_columns=("pm2_memory", "pm2_restarts"),
        )
        source = PM2Source(name, listing, time.time() - (time.monotonic() - watcher.t0), watcher.t0)
        if limit:
            # the recycling analysis reads the limit and the check as it does for --recycle
            watcher.writer.meta["config"]["recycle"] = _recycle_settings(limit)
        if config.health_url:
            watcher.writer.meta["config"]["rate"] = config.health_rate
        watcher.writer.write_meta()
        result = watcher.run(follow_restarts=True)
    finally:
        listing.close()
    out = PM2Result(**result.__dict__)
    restarts_seen = max(0, result.generations - 1)
    out.pm2 = {
        "restarts_at_start": source.first_restarts,
        "restarts_at_end": source.restarts,
        "restarts_by_pm2": (source.restarts or 0) - (source.first_restarts or 0),
        "generations_seen": result.generations,
        "restarts_seen": restarts_seen,
    }
    store_meta = store.read_meta(result.run_dir)
    store_meta["pm2"] = {**store_meta.get("pm2", {}), **out.pm2}
    store.write_json_atomic(Path(result.run_dir) / store.META, store_meta)
    return out
