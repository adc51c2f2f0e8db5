"""click parameter types over :mod:`leaklab.units`, so every command parses units the same way."""

from __future__ import annotations

from typing import Any

import click

from leaklab import units


class _UnitType(click.ParamType):
    parser: Any = None

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return type(self).parser(value)
        except units.UnitError as exc:
            self.fail(str(exc), param, ctx)


class SizeType(_UnitType):
    name = "size"
    parser = staticmethod(units.parse_size)


class DurationType(_UnitType):
    name = "duration"
    parser = staticmethod(units.parse_duration)


class RateType(_UnitType):
    name = "rate"
    parser = staticmethod(units.parse_rate)


class StepsOrDurationType(_UnitType):
    name = "steps|duration"
    parser = staticmethod(units.parse_steps_or_duration)


SIZE = SizeType()
DURATION = DurationType()
RATE = RateType()
STEPS_OR_DURATION = StepsOrDurationType()
