"""A SQLAlchemy engine per step with instrumentation listeners, kept in a registry (profiler
overhead).

Each step creates an in-memory SQLite engine, attaches pool and execution event
listeners (SQLAlchemy's event registry keeps them), runs one query, and in the
``leaky`` variant keeps the engine in a module-level registry: the heap grows by
the engine, its pool, dialect and listener records every step (about 18 KB).
``fixed`` disposes of the engine and removes the listeners. Needs ``sqlalchemy``
(benchmarks/requirements.txt).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event, text

VARIANTS = {"leaky": "keep every engine and its listeners", "fixed": "dispose of every engine"}

_ENGINES: list[Any] = []


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("pragma foreign_keys=on")


def _before_execute(
    _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    if context is not None:
        context.statement_length = len(statement)


def setup(variant: str) -> dict[str, Any]:
    return {"keep": variant == "leaky"}


def step(state: dict[str, Any]) -> None:
    engine = create_engine("sqlite://")
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "before_cursor_execute", _before_execute)
    with engine.connect() as connection:
        connection.execute(text("select 1")).scalar()
    if state["keep"]:
        _ENGINES.append(engine)
    else:
        event.remove(engine, "connect", _on_connect)
        event.remove(engine, "before_cursor_execute", _before_execute)
        engine.dispose()


def teardown(state: dict[str, Any]) -> None:
    for engine in _ENGINES:
        engine.dispose()
    _ENGINES.clear()
