from __future__ import annotations

from pathlib import Path

import pytest

TEST_SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.fixture
def test_scenario():
    """Path of a scenario file under tests/scenarios/."""

    def find(name: str) -> str:
        return str(TEST_SCENARIOS / f"{name}.py")

    return find
