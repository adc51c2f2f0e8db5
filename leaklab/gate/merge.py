"""``leaklab gate merge``: the outputs of sharded gate runs combined into one verdict.

Inputs are what ``leaklab gate`` writes: ``--json-out`` documents and ``--junit-xml``
reports (one per shard), and baseline files (``--update-baseline`` on each shard). The
merged verdict passes only when every check passed and, where the shards say how many
there were, every shard is present; a check found in two shards is an error (two
runners ran it: the matrix and ``--shard`` disagree).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaklab.gate.config import BASELINE_SCHEMA, EXIT_FAIL, EXIT_PASS, ConfigError


@dataclass
class Merged:
    checks: list[dict[str, Any]] = field(default_factory=list)  # from JSON inputs
    junit_cases: list[ET.Element] = field(default_factory=list)  # from JUnit inputs
    shards: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def statuses(self) -> dict[str, str]:
        """Check name -> pass/fail/error, from the JSON documents, else from the JUnit cases."""
        found = {c["name"]: c["status"] for c in self.checks}
        for case in self.junit_cases:
            name = case.get("name", "")
            if name not in found:
                status = (
                    "error"
                    if case.find("error") is not None
                    else ("fail" if case.find("failure") is not None else "pass")
                )
                found[name] = status
        return found

    @property
    def exit_code(self) -> int:
        statuses = self.statuses()
        return EXIT_PASS if statuses and all(s == "pass" for s in statuses.values()) else EXIT_FAIL

    def to_json(self) -> dict[str, Any]:
        statuses = self.statuses()
        code = self.exit_code
        by_name = {c["name"]: c for c in self.checks}
        return {
            "passed": code == EXIT_PASS,
            "exit_code": code,
            "merged_from": self.sources,
            "shards": sorted(self.shards, key=lambda s: s.get("index", 0)),
            "summary": {
                "checks": len(statuses),
                "passed": sum(s == "pass" for s in statuses.values()),
                "failed": sum(s != "pass" for s in statuses.values()),
            },
            "checks": [
                by_name.get(name, {"name": name, "status": status, "passed": status == "pass"})
                for name, status in statuses.items()
            ],
        }


def _read_json(path: Path, merged: Merged, seen: dict[str, str]) -> None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a gate JSON document ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise ConfigError(
            f"{path}: not a gate JSON document (no 'checks' list); write one with "
            "`leaklab gate --json-out FILE`"
        )
    for check in doc["checks"]:
        if not isinstance(check, dict) or "name" not in check or "status" not in check:
            raise ConfigError(f"{path}: a check without name or status")
        _claim(seen, str(check["name"]), path)
        merged.checks.append(check)
    if isinstance(doc.get("shard"), dict):
        merged.shards.append({**doc["shard"], "file": str(path), "passed": bool(doc.get("passed"))})


def _read_junit(path: Path, merged: Merged, seen: dict[str, str]) -> None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"{path}: not a JUnit XML report ({exc})") from None
    for suite in root.iter("testsuite"):
        props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
        if "shard.index" in props and "shard.total" in props:
            try:
                merged.shards.append(
                    {
                        "index": int(props["shard.index"] or 0),
                        "total": int(props["shard.total"] or 0),
                        "file": str(path),
                    }
                )
            except ValueError:
                raise ConfigError(f"{path}: shard properties are not numbers") from None
    for case in root.iter("testcase"):
        _claim(seen, case.get("name", ""), path)
        merged.junit_cases.append(case)


def _claim(seen: dict[str, str], name: str, path: Path) -> None:
    if name in seen and seen[name] != str(path):
        raise ConfigError(
            f"check {name!r} is in both {seen[name]} and {path}: two shards ran it "
            "(give every runner the same N in --shard K/N)"
        )
    seen[name] = str(path)


def merge(paths: Iterable[str | Path]) -> Merged:
    """Read gate outputs (``.json`` documents, ``.xml`` JUnit reports) into one :class:`Merged`."""
    merged = Merged()
    json_seen: dict[str, str] = {}
    junit_seen: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        merged.sources.append(str(path))
        if path.suffix.lower() == ".xml":
            _read_junit(path, merged, junit_seen)
        else:
            _read_json(path, merged, json_seen)
    if not merged.sources:
        raise ConfigError(
            "nothing to merge: give the gate outputs (JSON from --json-out, JUnit XML)"
        )
    _check_shards(merged.shards)
    return merged


def _check_shards(shards: list[dict[str, Any]]) -> None:
    totals = {int(s.get("total", 0)) for s in shards}
    if not shards:
        return
    if len(totals) != 1:
        raise ConfigError(f"the shards disagree on N: {sorted(totals)}")
    total = totals.pop()
    indices = [int(s.get("index", 0)) for s in shards]
    missing = sorted(set(range(1, total + 1)) - set(indices))
    if missing:
        raise ConfigError(
            f"shard(s) {', '.join(f'{k}/{total}' for k in missing)} missing: the merged verdict "
            "would skip their checks"
        )
    twice = sorted({k for k in indices if indices.count(k) > 1})
    if twice:
        raise ConfigError(f"shard(s) {', '.join(f'{k}/{total}' for k in twice)} given twice")


def _case_of(check: dict[str, Any]) -> ET.Element:
    """A JUnit test case for a check known only from a JSON document."""
    case = ET.Element(
        "testcase",
        {
            "classname": "leaklab.gate",
            "name": str(check["name"]),
            "time": f"{float(check.get('duration_s') or 0):.3f}",
        },
    )
    texts = "; ".join(
        str(j.get("text", "")) for j in check.get("judgements") or [] if j.get("outcome") == "fail"
    )
    if check["status"] == "error":
        message = str(check.get("message") or "the check's run failed")
        ET.SubElement(
            case, "error", {"message": message, "type": str(check.get("run_status") or "run")}
        ).text = message
    elif check["status"] == "fail":
        ET.SubElement(case, "failure", {"message": texts or "failed"}).text = texts
    if check.get("run_dir"):
        ET.SubElement(case, "system-out").text = f"run: {check['run_dir']}"
    return case


def junit_xml(merged: Merged) -> bytes:
    """One JUnit suite holding every shard's test cases (JUnit inputs as they are, checks
    known only from JSON documents converted)."""
    cases = list(merged.junit_cases)
    have = {c.get("name") for c in cases}
    cases += [_case_of(c) for c in merged.checks if c["name"] not in have]
    suite = ET.Element(
        "testsuite",
        {
            "name": "leaklab.gate",
            "tests": str(len(cases)),
            "failures": str(sum(c.find("failure") is not None for c in cases)),
            "errors": str(sum(c.find("error") is not None for c in cases)),
            "skipped": "0",
            "time": f"{sum(float(c.get('time') or 0) for c in cases):.3f}",
        },
    )
    suite.extend(cases)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def merge_baselines(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Baseline files combined; a check recorded in several keeps its most recent entry."""
    from leaklab import __version__
    from leaklab.gate.baseline import read_baseline

    entries: dict[str, Any] = {}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(f"--baseline {path}: no such file")
        for name, entry in read_baseline(path).items():
            old = entries.get(name)
            if old is None or str(entry.get("recorded", "")) >= str(old.get("recorded", "")):
                entries[name] = entry
    return {
        "schema": BASELINE_SCHEMA,
        "leaklab": __version__,
        "checks": dict(sorted(entries.items())),
    }
