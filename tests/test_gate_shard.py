"""``leaklab gate --shard K/N`` and ``leaklab gate merge``: shares are stable and cover every
check once; merged outputs give one verdict; missing or doubled shards are refused."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from leaklab.gate import ConfigError
from leaklab.gate.shard import Shard, parse_shard, shard_names

SCENARIO = Path(__file__).parent / "scenarios" / "retain_bytes.py"


def test_shards_cover_every_check_once_and_are_stable() -> None:
    names = [f"check-{c}" for c in "qwertyuiopasdfg"]
    for total in (1, 2, 4, 7, 20):
        shares = [shard_names(names, Shard(k, total)) for k in range(1, total + 1)]
        assert sorted(n for share in shares for n in share) == sorted(names)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        # The config's order does not matter: the same names give the same shares.
        assert shares == [
            shard_names(list(reversed(names)), Shard(k, total)) for k in range(1, total + 1)
        ]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard_text(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_shard(text)


def _config(tmp_path: Path) -> None:
    checks = "".join(
        (
            f'[[tool.leaklab.gate.checks]]\nname = "{name}"\nscenario = "{SCENARIO}"\n'
            f'variant = "{variant}"\n\n'
        )
        for name, variant in (("a-fixed", "fixed"), ("b-leaky", "leaky"), ("c-fixed", "fixed"))
    )
    (tmp_path / "pyproject.toml").write_text(
        (
            '[tool.leaklab.gate]\nduration = "2s"\ninterval = "0.1s"\nout = "runs"\n'
            'max_per_step = "16B"\n\n'
        )
        + checks
    )


def _leaklab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaklab", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # in the soak job, so that make test stays under 10 minutes
def test_sharded_gate_then_merge(tmp_path: Path) -> None:
    _config(tmp_path)
    first = _leaklab(
        tmp_path,
        "gate",
        "--shard",
        "1/2",
        "--json-out",
        "g1.json",
        "--junit-xml",
        "g1.xml",
        "--baseline",
        "base-1.json",
        "--update-baseline",
    )
    second = _leaklab(
        tmp_path,
        "gate",
        "--shard",
        "2/2",
        "--json-out",
        "g2.json",
        "--junit-xml",
        "g2.xml",
        "--baseline",
        "base-2.json",
        "--update-baseline",
    )
    # Names in order: a-fixed and c-fixed go to shard 1, b-leaky to shard 2.
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 1, second.stdout + second.stderr
    doc1 = json.loads((tmp_path / "g1.json").read_text())
    assert doc1["shard"] == {"index": 1, "total": 2, "checks": ["a-fixed", "c-fixed"]}
    assert [c["name"] for c in doc1["checks"]] == ["a-fixed", "c-fixed"]

    merged = _leaklab(
        tmp_path, "gate", "merge", "g1.json", "g2.json", "--junit-xml", "merged.xml", "--json"
    )
    assert merged.returncode == 1, merged.stderr
    doc = json.loads(merged.stdout)
    assert doc["summary"] == {"checks": 3, "passed": 2, "failed": 1}
    assert [s["index"] for s in doc["shards"]] == [1, 2]
    suite = ET.parse(tmp_path / "merged.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "1")

    # JUnit reports alone merge too (they say which shard they were).
    from_xml = _leaklab(tmp_path, "gate", "merge", "g1.xml", "g2.xml")
    assert (
        from_xml.returncode == 1 and "2 of 3 check(s) passed across 2 shard(s)" in from_xml.stdout
    )

    baseline = _leaklab(
        tmp_path,
        "gate",
        "merge",
        "--baseline",
        "base-1.json",
        "--baseline",
        "base-2.json",
        "--baseline-out",
        "baseline.json",
    )
    assert baseline.returncode == 0, baseline.stderr
    assert sorted(json.loads((tmp_path / "baseline.json").read_text())["checks"]) == [
        "a-fixed",
        "b-leaky",
        "c-fixed",
    ]

    # Only the passing shard: incomplete, refused.
    missing = _leaklab(tmp_path, "gate", "merge", "g1.json")
    assert missing.returncode == 2 and "shard(s) 2/2 missing" in missing.stderr
    (tmp_path / "g1-again.json").write_text((tmp_path / "g1.json").read_text())
    twice = _leaklab(tmp_path, "gate", "merge", "g1.json", "g1-again.json", "g2.json")
    assert twice.returncode == 2 and "two shards ran it" in twice.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    bad = _leaklab(tmp_path, "gate", "merge", "junk.json")
    assert (
        bad.returncode == 2
        and "not a gate JSON document" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_a_shard_with_no_checks_passes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.leaklab.gate]\nduration = "1s"\nmax_per_step = '
        f'"16B"\n\n[[tool.leaklab.gate.checks]]\nname = "only"\nscenario = "{SCENARIO}"\nvariant '
        '= "fixed"\n'
    )
    result = _leaklab(tmp_path, "gate", "--shard", "2/2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["checks"] == 0
