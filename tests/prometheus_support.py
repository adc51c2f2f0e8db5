"""A real Prometheus server on 127.0.0.1 scraping real exporters, for tests and benchmarks.

:func:`prometheus_binary` finds the server (the Debian package ``prometheus``, which the
Makefile installs); :class:`Fleet` starts exporters (``tests/exporters/memory_service.py``)
and one Prometheus scraping them every second, with a temporary data directory, and
stops every process it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

EXPORTER = Path(__file__).resolve().parent / "exporters" / "memory_service.py"
JOB = "fleet"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def missing_reason() -> str:
    return (
        "the prometheus server is not installed (the Makefile installs the Debian package "
        "`prometheus` with apt-get when run as root; install it with `apt-get install "
        "prometheus`)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prometheus(
    config: Path, data: Path, log_path: Path, retention: str = "1d"
) -> tuple[subprocess.Popen[bytes], str]:
    """A Prometheus server on 127.0.0.1 (a free port) with ``config`` and the TSDB in ``data``;
    returns it and its URL once it answers ready (within 60 s)."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError(missing_reason())
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.retention.time={retention}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {log_path.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return proc, url
        time.sleep(0.2)
    proc.terminate()
    proc.wait(timeout=10)
    raise RuntimeError(
        f"prometheus did not become ready: {log_path.read_text(errors='replace')[-2000:]}"
    )


@dataclass
class Exporter:
    name: str
    variant: str
    process: subprocess.Popen[str]
    port: int


@dataclass
class Fleet:
    """``variants`` exporters and one Prometheus scraping them every ``scrape_s`` seconds."""

    variants: list[str]
    duration_s: float = 60.0
    leak_rate: str = "1MB/s"
    scrape_s: float = 1.0
    exporters: list[Exporter] = field(default_factory=list)
    prometheus: subprocess.Popen[bytes] | None = None
    url: str = ""
    data_dir: Path | None = None
    started: float = 0.0

    def __enter__(self) -> Fleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if prometheus_binary() is None:
            raise RuntimeError(missing_reason())
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for i, variant in enumerate(self.variants):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(EXPORTER),
                    "--variant",
                    variant,
                    "--leak-rate",
                    self.leak_rate,
                    "--duration",
                    str(self.duration_s),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            self.exporters.append(Exporter(f"svc-{i:02d}", variant, proc, 0))
        for exporter in self.exporters:
            line = exporter.process.stdout.readline() if exporter.process.stdout else ""
            if not line.startswith("port "):
                raise RuntimeError(f"exporter {exporter.name} did not start (said {line!r})")
            exporter.port = int(line.split()[1])
        self.data_dir = Path(tempfile.mkdtemp(prefix="leaklab-prometheus-"))
        targets = "\n".join(
            (
                f"      - targets: ['127.0.0.1:{e.port}']\n"
                f"        labels: {{service: '{e.name}', variant: '{e.variant}'}}"
            )
            for e in self.exporters
        )
        config = self.data_dir / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {round(self.scrape_s * 1000)}ms\n"
            f"  scrape_timeout: {round(self.scrape_s * 1000)}ms\nscrape_configs:\n"
            f"  - job_name: {JOB}\n    static_configs:\n{targets}\n"
        )
        self.prometheus, self.url = start_prometheus(
            config, self.data_dir / "data", self.data_dir / "prometheus.log"
        )
        self.started = time.time()

    def log_tail(self) -> str:
        path = (self.data_dir or Path("/nonexistent")) / "prometheus.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def wait_for_points(self, points: int, timeout_s: float) -> None:
        """Until every exporter has been scraped ``points`` times (or ``timeout_s`` passed)."""
        deadline = time.monotonic() + timeout_s
        query = f"min(count_over_time(process_resident_memory_bytes{{job='{JOB}'}}[1h]))"
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException, KeyError, IndexError, ValueError):
                answer = requests.get(
                    f"{self.url}/api/v1/query", params={"query": query}, timeout=5
                ).json()
                result = answer["data"]["result"]
                if (
                    result
                    and float(result[0]["value"][1]) >= points
                    and len(self.series()) == len(self.exporters)
                ):
                    return
            time.sleep(0.5)
        raise RuntimeError(
            f"prometheus did not scrape {points} points of every exporter in {timeout_s:.0f}s"
        )

    def series(self) -> list[dict[str, str]]:
        answer = requests.get(
            f"{self.url}/api/v1/series",
            params={"match[]": f"process_resident_memory_bytes{{job='{JOB}'}}"},
            timeout=5,
        ).json()
        return list(answer.get("data") or [])

    def stop(self) -> None:
        procs = [e.process for e in self.exporters] + ([self.prometheus] if self.prometheus else [])
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout:
                proc.stdout.close()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
