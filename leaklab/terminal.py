"""Text on its way to a terminal: what a run's child named (types, sites, messages) must not
drive the terminal. Control characters (ESC, BEL, the C1 range, DEL ...) are shown as
``\\x1b``-style escapes instead of being sent; newlines and tabs stay."""

from __future__ import annotations

import re

import click

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: object) -> str:
    """``text`` with every control character but newline and tab written out as an escape."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def echo(text: object = "", err: bool = False) -> None:
    """click.echo of text that may hold what a run's child wrote."""
    click.echo(safe(text), err=err)


class OutputError(click.ClickException):
    """A file or folder leaklab was told to write cannot be written: exit 2, no traceback."""

    exit_code = 2

    def __init__(self, what: str, exc: OSError) -> None:
        where = f" {exc.filename}" if exc.filename else ""
        super().__init__(f"cannot write {what}{where}: {exc.strerror or exc}")
