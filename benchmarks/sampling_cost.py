"""What one in-child sample costs, on a small heap and on a heap of 1M objects.

A sample reads allocated blocks, gc counts and the child's own RSS and sends one JSON
line. Allocated blocks are counted by walking the allocator's arenas (CPython 3.9+), so
they are read on a time budget of their own; the rest does not depend on the heap. A forced full
collection does walk it; the step loop therefore forces them only while their measured
cost stays within 1% of the run's time. Printed: the median cost of a sample (forced
collections held off) at each heap size, what one forced collection costs, and how many
the budget then allows in a 10 s run.

    .venv/bin/python benchmarks/sampling_cost.py [--objects 1000000] [--samples 2000]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leaklab import probes  # noqa: E402
from leaklab.runner.child import BLOCKS_BUDGET, COLLECT_BUDGET, Reporter, StepLoop  # noqa: E402


def _loop(artifacts: Path, devnull: int) -> StepLoop:
    spec = {"t0": time.monotonic(), "duration_s": 10.0, "interval": 0.5}
    ctx = probes.ProbeContext(artifacts=artifacts, emit=lambda kind, **fields: None)
    loop = StepLoop(spec, Reporter(devnull), None, [], ctx)
    loop.heap.spacing_s = None  # hold forced collections off: the sample alone is measured
    loop.steps = 1
    return loop


def _read_blocks_s() -> float:
    started = time.perf_counter()
    sys.getallocatedblocks()
    return time.perf_counter() - started


def _median_sample_s(loop: StepLoop, n: int) -> float:
    costs = []
    for _ in range(n):
        started = time.perf_counter()
        loop.sample()
        costs.append(time.perf_counter() - started)
    return statistics.median(costs)


def _collect_s() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2_000)
    args = parser.parse_args(argv)
    devnull = os.open(os.devnull, os.O_WRONLY)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        loop = _loop(Path(tmp), devnull)
        small = len(gc.get_objects())
        rows.append(
            (f"{small:,}", _median_sample_s(loop, args.samples), _collect_s(), _read_blocks_s())
        )
        heap = [[i] for i in range(args.objects)]  # gc-tracked objects, as a real heap has
        big = len(gc.get_objects())
        loop = _loop(Path(tmp), devnull)  # a fresh budget for the big heap
        rows.append(
            (f"{big:,}", _median_sample_s(loop, args.samples), _collect_s(), _read_blocks_s())
        )
        reads, skipped = loop.blocks.reads, loop.blocks.skipped
        loop.heap.close()
        del heap
    print(
        f"{'tracked objects':>16} {'sample (median)':>16} {'blocks read':>12} "
        f"{'forced collection':>18} {'forced per 10 s run':>20}"
    )
    for objects, sample_s, collect_s, blocks_s in rows:
        allowed = int(COLLECT_BUDGET * 10 / collect_s) if collect_s > 0 else 0
        print(
            f"{objects:>16} {sample_s * 1e6:>13.1f} us {blocks_s * 1e6:>9.1f} us "
            f"{collect_s * 1e3:>15.1f} ms {allowed:>20}"
        )
    print(
        f"\non the big heap, {reads} of {reads + skipped} back-to-back samples read allocated "
        f"blocks (their {BLOCKS_BUDGET:.0%} budget); the others carry RSS and gc counts only"
    )
    ratio = rows[1][1] / rows[0][1]
    print(
        f"\nsample cost on the big heap / on the small one: {ratio:.2f} (target: about 1, it "
        "must not grow with the heap)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
