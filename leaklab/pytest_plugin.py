"""pytest plugin: fail a test whose body retains memory on every call.

Registered through the ``pytest11`` entry point, so installing leaklab enables it::

    @pytest.mark.leaklab
    def test_parse_does_not_leak():
        parse(b"...")

    @pytest.mark.leaklab(max_per_call="64B", warmup=20, calls=10, rounds=5)
    def test_cache_is_bounded(): ...

    def test_client(leaklab_check):
        leaklab_check(client.get, "/health", calls=10)     # any callable, sync or async

A marked test's fixtures are set up once; its body is called ``warmup`` times,
then in ``rounds`` rounds of ``calls`` calls, as :mod:`leaklab.callleak`
describes. Unmarked tests are untouched: the plugin looks at their markers and
steps aside. It wraps the test function outside pytest-memray's wrapper, so
``--memray`` and its markers see the repeated body as one test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from leaklab import callleak

MARKER = "leaklab"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(max_per_call=0, *, warmup=5, calls=25, rounds=4, patience=1000, frames=8, top=5): call the test body "
        "repeatedly and fail when every round retains more than max_per_call bytes per call (docs/ci.md)",
    )


def marker_options(marker: pytest.Mark) -> callleak.Options:
    """Options from ``@pytest.mark.leaklab(...)``: an optional positional ``max_per_call``, then keywords."""
    # Imported here: every pytest session in the environment loads this plugin, few use it.
    from leaklab import callleak
    if len(marker.args) > 1:
        raise callleak.OptionError(f"takes at most one positional argument (max_per_call), got {len(marker.args)}")
    values = dict(marker.kwargs)
    if marker.args:
        if "max_per_call" in values:
            raise callleak.OptionError("max_per_call given both positionally and by keyword")
        values["max_per_call"] = marker.args[0]
    return callleak.Options.from_mapping(values)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        from leaklab import callleak

        try:
            marker_options(marker)
        except callleak.OptionError as exc:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{MARKER}: {exc}") from None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return (yield)
    from leaklab import callleak

    options = marker_options(marker)
    original = pyfuncitem.obj
    origin = str(pyfuncitem.path)

    def repeated(**funcargs: Any) -> None:
        result = callleak.measure(functools.partial(original, **funcargs), options, origin=origin)
        _record(pyfuncitem, result)
        if result.leaked:
            pytest.fail(result.message(pyfuncitem.name), pytrace=False)

    # Outermost wrapper (tryfirst): pytest-memray's wrapper, if any, wraps this one.
    pyfuncitem.obj = repeated
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


def _record(item: pytest.Item, result: callleak.Result) -> None:
    item.user_properties.append(("leaklab_bytes_per_call", round(result.bytes_per_call, 2)))
    item.user_properties.append(("leaklab_blocks_per_call", round(result.blocks_per_call, 3)))
    if not result.leaked:  # a failure's message already carries the summary
        item.add_report_section("call", MARKER, result.summary())


class LeakCheck:
    """The ``leaklab_check`` fixture: ``leaklab_check(fn, *args, calls=..., warmup=..., **kwargs)``.

    Calls ``fn(*args, **kwargs)`` repeatedly (a coroutine function runs on a private
    event loop), fails the test when every round retains memory, and returns the
    :class:`leaklab.callleak.Result` otherwise. Arguments of ``fn`` that share a name
    with an option (``calls``, ``warmup`` ...) go through :func:`functools.partial`.
    """

    def __init__(self, origin: str | None) -> None:
        self.origin = origin

    def __call__(self, fn: Callable[..., Any], /, *args: Any, max_per_call: Any = None, warmup: int | None = None,
                 calls: int | None = None, rounds: int | None = None, patience: int | None = None,
                 frames: int | None = None, top: int | None = None, **kwargs: Any) -> callleak.Result:
        from leaklab import callleak

        given = {"max_per_call": max_per_call, "warmup": warmup, "calls": calls, "rounds": rounds,
                 "patience": patience, "frames": frames, "top": top}
        options = callleak.Options.from_mapping({k: v for k, v in given.items() if v is not None})
        result = callleak.measure(functools.partial(fn, *args, **kwargs), options, origin=self.origin)
        if result.leaked:
            name = getattr(fn, "__qualname__", None) or repr(fn)
            pytest.fail(result.message(f"{name}()"), pytrace=False)
        return result


@pytest.fixture
def leaklab_check(request: pytest.FixtureRequest) -> LeakCheck:
    """Check any callable for memory retained per call: ``leaklab_check(fn, *args, calls=25, warmup=5)``."""
    return LeakCheck(str(request.path))
