"""How far over --max-rss does a runaway child get before the parent kills it? (the overshoot)

Runs tests/scenarios/misbehaves.py through the real runner, ``--repeat`` times per case:

* ``leak``: 1 MB kept per step at 50 steps/s (50 MB/s), every byte written;
* ``allocate``: one allocation of 8 GB (every byte written) in the 10th step;

each under ``--max-rss`` (300 MB by default), and prints the RSS the parent saw when it
killed the child, its overshoot over the cap, and how long the run took. The parent
polls RSS every 0.1 s, so the overshoot is what grows in one poll (plus a late poll on a
busy machine). With ``--threads`` it also starts 3,000 live threads under the default cap
(the address-space backstop must leave room for their stacks).

    .venv/bin/python benchmarks/cap_overshoot.py                  # about 30 seconds
    .venv/bin/python benchmarks/cap_overshoot.py --repeat 5 --threads
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leaklab import runner, units  # noqa: E402
from leaklab.runner.parent import CAP_POLL_S  # noqa: E402

SCENARIO = str(ROOT / "tests" / "scenarios" / "misbehaves.py")
CASES = {
    "leak 50 MB/s": {"variant": "leak", "rate": 50.0},
    "one 8 GB allocation": {"variant": "allocate", "rate": None},
}


def _run(
    out: str, variant: str, rate: float | None, max_rss: int | None, **extra: object
) -> runner.RunResult:
    fields: dict[str, object] = dict(
        scenario=SCENARIO,
        variant=variant,
        rate=rate,
        duration_s=120,
        max_rss=max_rss,
        interval_s=0.1,
        out=out,
        progress=False,
        probes=[],
        profile="rss",
    )
    fields.update(extra)
    return runner.run(runner.RunConfig(**fields))  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-rss", default="300MB", help="the cap (default 300MB)")
    parser.add_argument(
        "--threads", action="store_true", help="also run 3,000 live threads under the default cap"
    )
    args = parser.parse_args()
    cap = units.parse_size(args.max_rss)
    print(f"cap {units.format_size(cap)}, RSS polled every {CAP_POLL_S:g} s")
    print(f"{'case':<22} {'status':<14} {'RSS at kill':>12} {'overshoot':>10} {'run':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            overshoots = []
            for _ in range(args.repeat):
                result = _run(tmp, case["variant"], case["rate"], cap)  # type: ignore[arg-type]
                over = (result.rss_peak or 0) - cap
                overshoots.append(over)
                print(
                    f"{name:<22} {result.status:<14} {units.format_size(result.rss_peak):>12} "
                    f"{units.format_size(over):>10} {result.duration_s:5.1f}s"
                )
            print(
                f"{name:<22} median overshoot {units.format_size(statistics.median(overshoots))}, "
                f"max {units.format_size(max(overshoots))}"
            )
        if args.threads:
            result = _run(tmp, "threads", None, None, steps=50, duration_s=None)
            print(
                "3,000 threads under the default cap "
                f"({units.format_size(runner.default_max_rss())}): {result.status}, peak RSS "
                f"{units.format_size(result.rss_peak)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
