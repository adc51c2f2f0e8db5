"""``pytest --leaklab`` and pytest-memray's ``limit_leaks`` on test suites no one here wrote.

Three well-known projects, pinned, whose sdists ship their tests: click, Jinja2 and
python-dateutil. At run time each project's sdist is downloaded (for its tests) and the
same version is installed with its test requirements into a target folder of a
temporary directory, put first on ``PYTHONPATH``; nothing is installed into the project's
own environment. A bounded subset of each suite (a few hundred tests, chosen by file)
runs three times, each in its own pytest process:

* **plain**: ``pytest`` as the project runs it;
* **leaklab**: ``pytest --leaklab`` (every test repeated, checked for memory retained per
  call, within the default budget of 10 s per test);
* **memray**: ``pytest --memray`` with ``@pytest.mark.limit_leaks("1 KB")`` added to
  every test by a small plugin (memray's documented way to look for leaks).

Outcomes come from JUnit XML; times are wall-clock seconds of the whole pytest process.
Every test flagged by leaklab is classified from its top allocation site and a rerun
alone (``--leaklab --leaklab-budget 60`` on that test in a fresh process; flags that
share a top site share the rerun of the first of them by test id):

* ``pytest machinery``: the site is in pytest, pluggy or a pytest plugin;
* ``real retention``: the site is in the project's code or its tests and the flag
  reproduces alone; :data:`EXPLAINED` says what is kept;
* ``noise``: the flag does not reproduce alone.

A memray flag is set beside leaklab's verdict for the same test: when leaklab checked it
and found nothing retained per call, what memray saw was kept once (a cache, a lazy
import, an interned name). ``--memray`` does not track ``unittest.TestCase`` methods.

    .venv/bin/python benchmarks/plugin_real_suites.py            # about 25 minutes on 2 cores
    .venv/bin/python benchmarks/plugin_real_suites.py --short    # one file per project
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 1200  # seconds, per pytest process
BUDGET = "10"  # --leaklab-budget, seconds per test (the default)
ALONE_BUDGET = "60"  # a flag's rerun alone has time to confirm
MEMRAY_LIMIT = "1 KB"


@dataclass(frozen=True)
class Project:
    name: str
    requirement: str  # the pinned release: its sdist for the tests, its wheel installed
    extra: tuple[str, ...]  # test requirements
    package: str  # import name, to recognise the project's own code in a site
    tests: tuple[str, ...]  # the subset, by file
    short: tuple[str, ...]
    args: tuple[str, ...] = ()


PROJECTS = [
    Project(
        "click",
        "click==8.5.1",
        (),
        "click",
        (
            "tests/test_context.py",
            "tests/test_chain.py",
            "tests/test_formatting.py",
            "tests/test_deprecations.py",
        ),
        ("tests/test_context.py",),
    ),
    Project(
        "jinja2",
        "jinja2==3.1.6",
        ("markupsafe==3.0.4",),
        "jinja2",
        (
            "tests/test_api.py",
            "tests/test_regression.py",
            "tests/test_inheritance.py",
            "tests/test_security.py",
            "tests/test_runtime.py",
        ),
        ("tests/test_api.py",),
    ),
    # Its conftest marks tests with pytest-cov's ``no_cover`` and its ini turns warnings
    # into errors: the unknown-mark warning is let through, as with pytest-cov installed.
    Project(
        "python-dateutil",
        "python-dateutil==4.0.0",
        ("freezegun==1.5.5",),
        "dateutil",
        (
            "tests/test_relativedelta.py",
            "tests/test_easter.py",
            "tests/test_utils.py",
            "tests/test_internals.py",
        ),
        ("tests/test_relativedelta.py",),
        ("-W", "ignore::pytest.PytestUnknownMarkWarning"),
    ),
]

MODES = {
    "plain": (),
    "leaklab": ("--leaklab", "--leaklab-budget", BUDGET),
    "memray": ("--memray", "-p", "leaklab_bench_limit_leaks"),
}

LIMIT_PLUGIN = f"""
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.limit_leaks({MEMRAY_LIMIT!r}))
"""

#: What a real retention keeps, found by reading the flagged tests and their top site:
#: (project, pattern matching the top site, explanation). A flag no entry matches is
#: printed as "unexplained", with its site.
EXPLAINED: list[tuple[str, str, str]] = [
    (
        "click",
        r"click[/\\]testing\.py",
        "click's `_make_cached_stream_func` (`_compat.py`) caches each stream in a "
        "WeakKeyDictionary whose value is the stream itself, so no entry ever dies: every "
        "`CliRunner.invoke` whose command echoes keeps the runner's `_NamedTextIOWrapper` and "
        "its BytesIO (300 invokes of a command that echoes leave 300 entries)",
    ),
]

MACHINERY = re.compile(
    r"[/\\](_pytest|pluggy|pytest_memray|xdist|_hypothesis_pytestplugin)[/\\]|"
    r"[/\\]pytest_[a-z_]+\.py"
)


@dataclass
class Case:
    outcome: str  # passed, failed, error, skipped
    message: str = ""
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    seconds: float
    cases: dict[str, Case]
    exit_code: int


def prepare(project: Project, work: Path) -> tuple[Path, Path]:
    """The project's source tree (with its tests) and a target folder holding its install."""
    sdists = work / "sdist"
    _pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(sdists), project.requirement)
    name = re.split(r"[=<>]", project.requirement)[0].replace("-", "_").lower()
    archive = next(
        p
        for p in sdists.iterdir()
        if p.name.lower().startswith(name) and p.name.endswith(".tar.gz")
    )
    with tarfile.open(archive) as tar:
        tar.extractall(work / "src", filter="data")
    source = next((work / "src").iterdir())
    site = work / "site"
    _pip("install", "--quiet", "--target", str(site), project.requirement, *project.extra)
    (work / "plugins").mkdir(exist_ok=True)
    (work / "plugins" / "leaklab_bench_limit_leaks.py").write_text(LIMIT_PLUGIN)
    return source, site


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )


def run_pytest(source: Path, site: Path, args: list[str], junit: Path) -> Run:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(site), str(site.parent / "plugins")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        f"--junit-xml={junit}",
        *args,
    ]
    began = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=source,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        code = process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise RuntimeError(f"pytest ran past {RUN_TIMEOUT} s: {' '.join(command)}") from None
    seconds = time.perf_counter() - began
    return Run(seconds, read_junit(junit) if junit.exists() else {}, code)


def read_junit(path: Path) -> dict[str, Case]:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (node.get("message") or "") + "\n" + (node.text or "")
                break
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        cases[key] = Case(outcome, message, props)
    return cases


def node_id(key: str, source: Path) -> str:
    """JUnit's ``tests.test_x.TestY::test_z[p]`` back to ``tests/test_x.py::TestY::test_z[p]``."""
    classname, name = key.split("::", 1)
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if (source / module).exists():
            return "::".join([module, *parts[cut:], name])
    return key


def classify(project: Project, key: str, case: Case, alone: Case | None) -> tuple[str, str]:
    site = case.properties.get("leaklab_top_site", "")
    if MACHINERY.search(site):
        return "pytest machinery", site
    if alone is not None and alone.properties.get("leaklab") != "retains":
        return (
            "noise",
            (
                f"did not reproduce alone ({alone.properties.get('leaklab', alone.outcome)}); "
                f"site {site}"
            ),
        )
    return explain(project.name, site)


def explain(project: str, site: str) -> tuple[str, str]:
    for name, pattern, note in EXPLAINED:
        if name == project and re.search(pattern, site):
            return "real retention", note
    return "real retention (unexplained)", site


def rerun_alone(
    project: Project, source: Path, site: Path, flags: dict[str, Case], work: Path
) -> dict[str, Case]:
    """Each distinct top site's first flag (by test id), checked alone in a fresh process; the
    other flags at that site share its rerun."""
    representative: dict[str, str] = {}
    for key in sorted(flags):
        representative.setdefault(flags[key].properties.get("leaklab_top_site", key), key)
    found: dict[str, Case] = {}
    for i, key in enumerate(representative.values()):
        args = [*project.args, "--leaklab", "--leaklab-budget", ALONE_BUDGET, node_id(key, source)]
        found.update(run_pytest(source, site, args, work / f"alone-{i}.xml").cases)
    return {
        key: found[representative[flags[key].properties.get("leaklab_top_site", key)]]
        for key in flags
        if representative[flags[key].properties.get("leaklab_top_site", key)] in found
    }


def memray_flagged(case: Case) -> bool:
    return case.outcome == "failed" and "allowed to leak" in case.message


def measure_project(project: Project, short: bool, work: Path) -> dict:
    source, site = prepare(project, work)
    tests = list(project.short if short else project.tests)
    runs = {
        mode: run_pytest(source, site, [*project.args, *extra, *tests], work / f"{mode}.xml")
        for mode, extra in MODES.items()
    }
    plain, leak, mem = runs["plain"], runs["leaklab"], runs["memray"]
    statuses = Counter(_status_kind(c.properties.get("leaklab", "")) for c in leak.cases.values())
    flagged = sorted(k for k, c in leak.cases.items() if c.properties.get("leaklab") == "retains")
    alone = rerun_alone(project, source, site, {k: leak.cases[k] for k in flagged}, work)
    flags = []
    for key in flagged:
        kind, why = classify(project, key, leak.cases[key], alone.get(key))
        flags.append(
            {
                "test": key,
                "bytes_per_call": float(
                    leak.cases[key].properties.get("leaklab_bytes_per_call", 0)
                ),
                "class": kind,
                "why": why,
            }
        )
    unconfirmed = sorted(
        (
            (float(c.properties.get("leaklab_bytes_per_call", 0)), k)
            for k, c in leak.cases.items()
            if c.properties.get("leaklab", "").startswith("not checked: over budget, unconfirmed")
        ),
        reverse=True,
    )
    not_checked = {
        k: c.properties["leaklab"]
        for k, c in leak.cases.items()
        if c.properties.get("leaklab", "").startswith("not checked")
    }
    changed = sorted(
        k
        for k, c in leak.cases.items()
        if k in plain.cases
        and plain.cases[k].outcome == "passed"
        and c.outcome != "passed"
        and k not in flagged
    )
    mem_flags = sorted(k for k, c in mem.cases.items() if memray_flagged(c))
    mem_classes = Counter(_memray_class(leak.cases.get(k)) for k in mem_flags)
    return {
        "project": project.requirement,
        "tests": len(plain.cases),
        "plain": {
            "seconds": plain.seconds,
            "outcomes": Counter(c.outcome for c in plain.cases.values()),
        },
        "leaklab": {
            "seconds": leak.seconds,
            "statuses": statuses,
            "flags": flags,
            "changed": changed,
            "unconfirmed": unconfirmed,
            "not_checked": not_checked,
            "outcomes": Counter(c.outcome for c in leak.cases.values()),
        },
        "memray": {
            "seconds": mem.seconds,
            "flagged": mem_flags,
            "classes": mem_classes,
            "outcomes": Counter(c.outcome for c in mem.cases.values()),
        },
    }


def _status_kind(status: str) -> str:
    if not status:
        return "not run (skipped or failed first call)"
    return status if status in ("checked", "retains") else "not checked: " + status.split(": ")[1]


def _memray_class(leak_case: Case | None) -> str:
    status = leak_case.properties.get("leaklab", "") if leak_case else ""
    if status == "checked":
        return "kept once (leaklab: nothing per call)"
    if status == "retains":
        return "also flagged by leaklab"
    if status.startswith("not checked: over budget, unconfirmed"):
        return "leaklab: every measured round retained, unconfirmed (budget)"
    return "leaklab did not check it"


def render(results: list[dict]) -> str:
    lines = [
        "| project | tests | plain s | leaklab: checked / flagged / not checked | leaklab s (x "
        "plain) | memray limit_leaks: flagged | memray s (x plain) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        st = r["leaklab"]["statuses"]
        checked = st.get("checked", 0) + st.get("retains", 0)
        not_checked = sum(n for k, n in st.items() if k.startswith("not checked"))
        p, lk, m = r["plain"]["seconds"], r["leaklab"]["seconds"], r["memray"]["seconds"]
        lines.append(
            f"| {r['project']} | {r['tests']} | {p:.1f} | {checked} / {st.get('retains', 0)} / "
            f"{not_checked} | {lk:.1f} ({lk / p:.1f}x) | {len(r['memray']['flagged'])} | {m:.1f} "
            f"({m / p:.1f}x) |"
        )
    lines += ["", "Not checked by leaklab, by reason:", ""]
    for r in results:
        reasons = ", ".join(
            f"{n} {k.removeprefix('not checked: ')}"
            for k, n in r["leaklab"]["statuses"].items()
            if k not in ("checked", "retains")
        )
        lines.append(f"* {r['project']}: {reasons or 'none'}")
    lines += [
        "",
        "leaklab flags:",
        "",
        "| project | test | bytes/call | class | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    notes: dict[str, int] = {}
    for r in results:
        for f in r["leaklab"]["flags"]:
            ref = notes.setdefault(f["why"], len(notes) + 1)
            lines.append(
                f"| {r['project']} | `{f['test']}` | {f['bytes_per_call']:.0f} | {f['class']} "
                f"| [{ref}] |"
            )
    lines += [""] + [f"[{ref}] {why}" for why, ref in notes.items()]
    lines += [
        "",
        "Retained in every measured round, budget ran out before confirming (bytes/call):",
        "",
    ]
    for r in results:
        listed = ", ".join(f"`{k}` {b:.0f}" for b, k in r["leaklab"].get("unconfirmed", []))
        lines.append(f"* {r['project']}: {listed or 'none'}")
    lines += ["", "Not checked, each:", ""]
    for r in results:
        for key, status in sorted(r["leaklab"].get("not_checked", {}).items()):
            if "unconfirmed" not in status:
                lines.append(
                    f"* {r['project']} `{key}`: {status.removeprefix('not checked: ')[:200]}"
                )
    lines += [
        "",
        (
            "Tests that pass plain but not under --leaklab, other than flags "
            "(repetition side effects):"
        ),
        "",
    ]
    for r in results:
        lines.append(
            f"* {r['project']}: {len(r['leaklab']['changed'])} {r['leaklab']['changed'][:10]}"
        )
    lines += ["", "memray limit_leaks flags, set beside leaklab's check of the same test:", ""]
    for r in results:
        classes = ", ".join(f"{n} {k}" for k, n in r["memray"]["classes"].most_common())
        lines.append(f"* {r['project']}: {len(r['memray']['flagged'])} flagged: {classes or '-'}")
    return "\n".join(lines)


def reload(path: Path) -> list[dict]:
    results = json.loads(path.read_text())
    for r in results:
        name = next(p.name for p in PROJECTS if p.requirement == r["project"])
        for mode, key in (
            ("plain", "outcomes"),
            ("leaklab", "outcomes"),
            ("leaklab", "statuses"),
            ("memray", "outcomes"),
            ("memray", "classes"),
        ):
            r[mode][key] = Counter(r[mode][key])
        for flag in r["leaklab"]["flags"]:
            if flag["class"] == "real retention (unexplained)":
                flag["class"], flag["why"] = explain(name, flag["why"])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="one test file per project")
    parser.add_argument(
        "--project",
        action="append",
        choices=[p.name for p in PROJECTS],
        help="only this project (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="print the tables of an earlier run's --json again (explanations as of now)",
    )
    args = parser.parse_args()
    if args.from_json:
        print(render(reload(args.from_json)))
        return 0
    results = []
    for project in PROJECTS:
        if args.project and project.name not in args.project:
            continue
        work = Path(tempfile.mkdtemp(prefix=f"leaklab-suite-{project.name}-"))
        try:
            print(f"== {project.requirement}", file=sys.stderr, flush=True)
            results.append(measure_project(project, args.short, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=dict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
