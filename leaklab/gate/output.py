"""The gate's outputs: the exit code, the ``--json`` document and the JUnit XML report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from leaklab.gate.config import EXIT_FAIL, EXIT_PASS, GateConfig
from leaklab.gate.execute import Outcome


def exit_code(outcomes: Iterable[Outcome]) -> int:
    return EXIT_PASS if all(o.passed for o in outcomes) else EXIT_FAIL


def to_json(
    outcomes: list[Outcome], config: GateConfig, shard: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``--json`` document; ``shard`` (index, total, checks) when run with ``--shard``."""
    code = exit_code(outcomes)
    extra = {"shard": shard} if shard is not None else {}
    return {
        **extra,
        "passed": code == EXIT_PASS,
        "exit_code": code,
        "config": str(config.path),
        "summary": {
            "checks": len(outcomes),
            "passed": sum(o.passed for o in outcomes),
            "failed": sum(not o.passed for o in outcomes),
        },
        "rule": (
            "a limit fails when the whole 95% interval is above it; an interval straddling it is "
            "undecided"
        ),
        "checks": [o.to_dict() for o in outcomes],
    }


def junit_xml(outcomes: list[Outcome], shard: dict[str, Any] | None = None) -> bytes:
    """JUnit XML: one testcase per check; a broken limit is a failure, a run that failed an error.
    A sharded run says which shard it was (suite properties ``shard.index``, ``shard.total``)."""
    suite = ET.Element(
        "testsuite",
        {
            "name": "leaklab.gate",
            "tests": str(len(outcomes)),
            "failures": str(sum(o.status == "fail" for o in outcomes)),
            "errors": str(sum(o.status == "error" for o in outcomes)),
            "skipped": "0",
            "time": f"{sum(o.duration_s for o in outcomes):.3f}",
        },
    )
    if shard is not None:
        props = ET.SubElement(suite, "properties")
        for key in ("index", "total"):
            ET.SubElement(props, "property", {"name": f"shard.{key}", "value": str(shard[key])})
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": "leaklab.gate",
                "name": o.check.name,
                "time": f"{o.duration_s:.3f}",
            },
        )
        props = ET.SubElement(case, "properties")
        for key, value in (
            ("scenario", o.check.scenario),
            ("variant", o.check.variant or ""),
            ("run_dir", o.run_dir or ""),
            ("verdict", o.verdict or ""),
        ):
            ET.SubElement(props, "property", {"name": key, "value": str(value)})
        for j in o.judgements:
            if j.measured is not None:
                ET.SubElement(
                    props, "property", {"name": f"{j.key}.measured", "value": repr(j.measured)}
                )
        if o.status == "error":
            ET.SubElement(
                case, "error", {"message": o.message, "type": o.run_status or "run"}
            ).text = o.message
        elif o.status == "fail":
            failed = o.failures()
            message = "; ".join(j.text for j in failed)
            ET.SubElement(
                case, "failure", {"message": message, "type": ",".join(j.key for j in failed)}
            ).text = o.line()
        body = [o.line()]
        if o.reasons:
            body.append("analysis: " + " ".join(o.reasons))
        if o.run_dir:
            body.append(f"run: {o.run_dir}")
        ET.SubElement(case, "system-out").text = "\n".join(body)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
