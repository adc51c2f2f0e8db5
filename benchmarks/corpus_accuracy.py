"""Verdict accuracy on the public corpus (benchmarks/corpus/): every case, three ways.

Each case is a scenario modelled on a public bug report, labelled ``EXPECTED = "LEAK"``
or ``"NOT_LEAK"`` (a look-alike: PLATEAU and NO_LEAK are both right). Every case runs
through the real runner with default settings:

* ``steps``: ``--steps NATURAL_STEPS`` (the case's own length);
* ``auto``: no length at all (stops when the verdict is confident, ``--max-duration``);
* ``10s``: ``--duration 10s`` (any ``<seconds>s`` way is a run of that duration: ``1s`` shows
  what the verdict makes of the shortest runs).

Printed: a confusion table per way, each case's verdicts, and how long the ``auto`` way
took to decide. Install the cases' pinned libraries first:

    .venv/bin/pip install -r benchmarks/corpus/requirements.txt
    .venv/bin/python benchmarks/corpus_accuracy.py                   # about 30 minutes
    .venv/bin/python benchmarks/corpus_accuracy.py --ways steps --cases 'asyncio_*'
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fnmatch
import json
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from leaklab import runner  # noqa: E402
from leaklab.analysis import analyze  # noqa: E402
from leaklab.analysis.sequential import SequentialStop  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"
WAYS = ("steps", "auto", "10s")
LABELS = ("LEAK", "PLATEAU", "NO_LEAK", "INCONCLUSIVE")


@dataclass
class Case:
    name: str
    path: Path
    expected: str
    natural_steps: int
    shape: str


def _constants(path: Path) -> dict[str, Any]:
    """Module-level constants, read without importing the case."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            with contextlib.suppress(ValueError):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def cases(pattern: str = "*", corpus: Path = CORPUS) -> list[Case]:
    found = []
    for path in sorted(corpus.glob("*.py")):
        if path.name.startswith("_") or not fnmatch.fnmatch(path.stem, pattern):
            continue
        c = _constants(path)
        found.append(
            Case(
                path.stem,
                path,
                str(c["EXPECTED"]),
                int(c["NATURAL_STEPS"]),
                str(c.get("SHAPE", "")),
            )
        )
    return found


def right(expected: str, label: str) -> bool:
    return label == "LEAK" if expected == "LEAK" else label in ("PLATEAU", "NO_LEAK")


def _seconds(way: str) -> float | None:
    """The duration of a ``<seconds>s`` way (None for another)."""
    try:
        seconds = float(way[:-1]) if way.endswith("s") and way != "steps" else math.nan
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def run_case(case: Case, way: str, out: Path, max_duration_s: float) -> dict[str, Any]:
    config = runner.RunConfig(scenario=str(case.path), out=str(out), progress=False)
    if way == "steps":
        config.steps = case.natural_steps
    elif seconds := _seconds(way):
        config.duration_s = seconds
    else:
        config.max_duration_s = max_duration_s
        config.stop_rule = SequentialStop(max_duration_s)
    started = time.monotonic()
    result = runner.run(config)
    wall = time.monotonic() - started
    a = analyze(result.run_dir)
    decided = [e for e in _events(result.run_dir) if e.get("kind") == "decided"]
    g = a.primary
    return {
        "case": case.name,
        "way": way,
        "expected": case.expected,
        "label": a.label,
        "status": result.status,
        "signal": a.verdict.signal,
        "reasons": a.verdict.reasons,
        "wall_s": round(wall, 2),
        "steps": result.steps,
        "decided_at_s": decided[0]["t"] if decided else None,
        "per_step": None if g is None or not math.isfinite(g.bytes_per_step) else g.bytes_per_step,
        "run": str(result.run_dir),
    }


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run_dir / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]


def confusion(results: list[dict[str, Any]]) -> str:
    lines = [f"{'expected':<10}" + "".join(f"{label:>14}" for label in LABELS) + f"{'right':>8}"]
    for expected in ("LEAK", "NOT_LEAK"):
        rows = [r for r in results if r["expected"] == expected]
        counts = Counter(r["label"] for r in rows)
        good = sum(right(expected, r["label"]) for r in rows)
        lines.append(
            f"{expected:<10}"
            + "".join(f"{counts.get(label, 0):>14}" for label in LABELS)
            + f"{good:>5}/{len(rows)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="*", help="glob over case names")
    parser.add_argument(
        "--ways",
        default=",".join(WAYS),
        help="comma-separated: " + ", ".join(WAYS) + " or any other '<seconds>s'",
    )
    parser.add_argument(
        "--max-duration", type=float, default=120.0, help="seconds, for the auto way"
    )
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of cases")
    args = parser.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    for way in ways:
        if way not in WAYS and not _seconds(way):
            parser.error(f"unknown way {way!r}: one of {', '.join(WAYS)} or '<seconds>s'")
    chosen = cases(args.cases, args.corpus)
    out = Path(tempfile.mkdtemp(prefix="leaklab-corpus-"))
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for case in chosen:
        for way in ways:
            r = run_case(case, way, out, args.max_duration)
            results.append(r)
            mark = "ok " if right(case.expected, r["label"]) else "BAD"
            when = f" decided at {r['decided_at_s']:.1f}s" if r["decided_at_s"] is not None else ""
            print(
                f"{mark} {case.name:<34} {way:<5} {case.expected:<8} -> {r['label']:<12} on "
                f"{r['signal'] or '-':<6} {r['wall_s']:6.1f}s{when}",
                flush=True,
            )
    print()
    for way in ways:
        subset = [r for r in results if r["way"] == way]
        print(
            f"== {way}: {sum(right(r['expected'], r['label']) for r in subset)}/{len(subset)} right"
        )
        print(confusion(subset))
        print()
    wrong = [r for r in results if not right(r["expected"], r["label"])]
    for r in wrong:
        print(f"{r['case']} [{r['way']}] {r['label']}: {' '.join(r['reasons'])}")
    print(
        f"\n{len(chosen)} cases, {len(results)} runs in {time.monotonic() - started:.0f}s; "
        f"runs kept in {out}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
