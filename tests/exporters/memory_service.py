"""A Python service exposing its own memory to Prometheus (prometheus_client's process
collector: ``process_resident_memory_bytes``), leaky or fixed.

    python memory_service.py --variant leaky --leak-rate 1MB/s --duration 60

Binds 127.0.0.1 on a free port (or ``--port``, so that a restarted service is the same
scrape target) and prints ``port N`` on stdout once it serves. Every
tick it builds a request-sized buffer; the leaky variant keeps each one, the fixed
variant drops it. It stops after ``--duration`` seconds and runs under an address-space
cap (``--max-memory``), so a leak cannot outgrow the machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from prometheus_client import start_http_server

from leaklab import units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["leaky", "fixed"], default="leaky")
    parser.add_argument("--leak-rate", default="1MB/s", help="bytes kept per second (leaky)")
    parser.add_argument("--tick", type=float, default=0.05)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--max-memory", default="600MB")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    cap = units.parse_size(args.max_memory)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    per_tick = int(units.parse_size(args.leak_rate.split("/")[0]) * args.tick)
    server, _thread = start_http_server(args.port, addr="127.0.0.1")
    print(f"port {server.server_port}", flush=True)
    kept: list[bytes] = []
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        buffer = b"\x01" * per_tick  # written, so its pages are resident
        if args.variant == "leaky":
            kept.append(buffer)
        del buffer
        time.sleep(args.tick)
    server.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
