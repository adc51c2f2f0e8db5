"""click parameter types over :mod:`leaklab.units`, so every command parses units the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from leaklab import units


class UnitType(click.ParamType):
    """A value with a unit (150MB, 90s, 200/s), read by one of :mod:`leaklab.units`' parsers."""

    def __init__(self, name: str, parser: Callable[[str], Any]) -> None:
        self.name = name
        self.parser = parser

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parser(value)
        except units.UnitError as exc:
            self.fail(str(exc), param, ctx)


SIZE = UnitType("size", units.parse_size)
DURATION = UnitType("duration", units.parse_duration)
RATE = UnitType("rate", units.parse_rate)
STEPS_OR_DURATION = UnitType("steps|duration", units.parse_steps_or_duration)
