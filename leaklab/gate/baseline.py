"""The baseline file: the figures ``--update-baseline`` records, read back by ``--baseline``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from leaklab.gate.config import BASELINE_SCHEMA, ConfigError
from leaklab.gate.execute import Outcome


def read_baseline(path: Path) -> dict[str, Any]:
    """Baseline entries by check name; a missing file is an empty baseline."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--baseline {path}: not a leaklab baseline file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), dict):
        raise ConfigError(f"--baseline {path}: not a leaklab baseline file (no 'checks' object)")
    if int(data.get("schema", BASELINE_SCHEMA)) > BASELINE_SCHEMA:
        raise ConfigError(
            f"--baseline {path}: written by a newer leaklab (schema {data.get('schema')}); "
            "upgrade leaklab"
        )
    return dict(data["checks"])


def write_baseline(
    path: Path, outcomes: Iterable[Outcome], previous: Mapping[str, Any]
) -> list[str]:
    """Record the figures of every check whose run completed; others keep their old entry."""
    from leaklab import __version__, store

    entries = dict(previous)
    written = []
    for outcome in outcomes:
        if outcome.figures:
            entries[outcome.check.name] = {
                **outcome.figures,
                "run": outcome.run_dir,
                "recorded": store.iso(store.utc_now()),
            }
            written.append(outcome.check.name)
    document = {
        "schema": BASELINE_SCHEMA,
        "leaklab": __version__,
        "checks": dict(sorted(entries.items())),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return written
