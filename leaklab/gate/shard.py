"""Sharding: ``leaklab gate --shard K/N`` runs a stable share of the checks, so a CI matrix
of N runners covers every check exactly once.

The checks are ordered by name and dealt out in turn (the first to shard 1, the second
to shard 2, ...): the same config always gives every runner the same checks, on any
machine, and the shards differ in size by at most one check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from leaklab.gate.config import ConfigError, GateConfig

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    def to_dict(self, names: list[str]) -> dict[str, Any]:
        return {"index": self.index, "total": self.total, "checks": names}


def parse_shard(text: str) -> Shard:
    match = _SHARD_RE.match(text)
    if not match:
        raise ConfigError(f"--shard {text!r}: expected K/N, e.g. 2/4 (the second of four runners)")
    index, total = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= total:
        raise ConfigError(f"--shard {text}: K must be between 1 and N")
    return Shard(index, total)


def shard_names(names: list[str], shard: Shard) -> list[str]:
    """The check names that belong to ``shard`` (in name order)."""
    return [name for i, name in enumerate(sorted(names)) if i % shard.total == shard.index - 1]


def select_shard(config: GateConfig, shard: Shard) -> GateConfig:
    """``config`` with only the checks of ``shard`` (in their config order)."""
    mine = set(shard_names([c.name for c in config.checks], shard))
    return replace(config, checks=[c for c in config.checks if c.name in mine])
