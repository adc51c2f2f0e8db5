"""Requests/s of a real Flask app run by `leaklab run -- python app.py`, with and without the
in-process probes that the Python bootstrap starts, side by side.

    python benchmarks/bootstrap_overhead.py [--seconds 10] [--rounds 3]

Each round starts examples/leaky_flask_app.py (--fixed, so memory stays flat) under
`leaklab run` three ways: --no-bootstrap (outside sampling only), the bootstrap with
--profile rss (its sampling thread and counters), and the bootstrap with the default
probes (tracemalloc windows, gc type counts, retention chains at the end). A closed-loop
client (8 connections, keep-alive, as fast as the app answers) measures the app's
requests/s over --seconds while leaklab records it. Rounds alternate the modes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from leaklab.runner.command import free_port  # noqa: E402

APP = ROOT / "examples" / "leaky_flask_app.py"
MODES = {
    "no bootstrap": ["--no-bootstrap", "--profile", "rss"],
    "bootstrap, rss": ["--profile", "rss"],
    "bootstrap, default probes": ["--profile", "default"],
}
CONNECTIONS = 8


async def _closed_loop(port: int, seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/work") as response:
                await response.read()
                done += response.status == 200

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:
        start = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))
        return done / (time.monotonic() - start)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    import http.client

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the app did not start under leaklab run")


def one(mode: str, seconds: float, out: str) -> float:
    port = free_port()
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leaklab",
            "run",
            "--out",
            out,
            "--duration",
            f"{seconds + 6}s",
            "--load",
            f"http://127.0.0.1:{port}/health",
            "--rate",
            "1/s",
            *MODES[mode],
            "--",
            sys.executable,
            str(APP),
            "--port",
            str(port),
            "--fixed",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(port, run)
        time.sleep(1.5)  # past the bootstrap's start-up and the first samples
        return asyncio.run(_closed_loop(port, seconds))
    finally:
        run.wait(timeout=seconds + 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="leaklab-bench-")
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(args.rounds):
        for mode in MODES:
            rps = one(mode, args.seconds, out)
            results[mode].append(rps)
            print(f"round {r + 1}  {mode:<28} {rps:8.0f} req/s", flush=True)
    base = statistics.median(results["no bootstrap"])
    print(f"\n{'mode':<28}{'median req/s':>14}{'ratio':>8}")
    for mode, values in results.items():
        median = statistics.median(values)
        print(f"{mode:<28}{median:>14,.0f}{median / base:>8.2f}")


if __name__ == "__main__":
    main()
