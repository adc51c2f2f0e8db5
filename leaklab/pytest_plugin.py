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
describes. What pytest itself keeps of each call (log records, warnings, captured
output, properties, monkeypatch undo entries) is rolled back before every call
(:mod:`leaklab.pytest_harness`). Unmarked tests are untouched unless ``--leaklab``
is given: then every test goes through the same check within a time budget, and the
session ends with a table of the tests that retain memory per call. The plugin wraps
the test function outside pytest-memray's wrapper, so ``--memray`` and its markers see
the repeated body as one test.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from leaklab import callleak

MARKER = "leaklab"
SUITE_OPTION = "leaklab_suite"
BUDGET_OPTION = "leaklab_budget"
DEFAULT_BUDGET = 10.0
#: JUnit property names; ``leaklab`` holds the outcome of the check (see :class:`SuiteSummary`).
PROPERTY_STATUS = "leaklab"
PROPERTY_BYTES = "leaklab_bytes_per_call"
PROPERTY_BLOCKS = "leaklab_blocks_per_call"
PROPERTY_SITE = "leaklab_top_site"
CHECKED, FLAGGED, NOT_CHECKED = "checked", "retains", "not checked"
UNCONFIRMED = "over budget, unconfirmed"  # every measured round retained; no time to confirm


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leaklab", "memory retained per call (leaklab)")
    group.addoption(
        "--leaklab",
        "--leaklab-all",
        action="store_true",
        dest=SUITE_OPTION,
        default=False,
        help="check every test, marked or not, for memory retained per call (docs/ci.md); "
        "tests that cannot be repeated are left unchecked",
    )
    group.addoption(
        "--leaklab-budget",
        dest=BUDGET_OPTION,
        type=float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=(
            f"with --leaklab: time an unmarked test's check may take (default {DEFAULT_BUDGET:g} s)"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    from leaklab import callleak

    config.addinivalue_line(
        "markers",
        f"{MARKER}({callleak.Options.signature()}): call the test body repeatedly and fail when "
        "every round retains more than max_per_call bytes per call (docs/ci.md)",
    )
    if config.getoption(BUDGET_OPTION) <= 0:
        raise pytest.UsageError(
            f"--leaklab-budget must be a positive number of seconds, "
            f"got {config.getoption(BUDGET_OPTION)}"
        )
    config.pluginmanager.register(SuiteSummary(config.getoption(SUITE_OPTION)), "leaklab-summary")


def marker_options(marker: pytest.Mark) -> callleak.Options:
    """Options from ``@pytest.mark.leaklab(...)``: an optional positional ``max_per_call``, then
    keywords."""
    # Imported here: every pytest session in the environment loads this plugin, few use it.
    from leaklab import callleak

    positional = callleak.Options.names()[0]
    if len(marker.args) > 1:
        raise callleak.OptionError(
            f"takes at most one positional argument ({positional}), got {len(marker.args)}"
        )
    values = dict(marker.kwargs)
    if marker.args:
        if positional in values:
            raise callleak.OptionError(f"{positional} given both positionally and by keyword")
        values[positional] = marker.args[0]
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
    repeated = _repeated_body(pyfuncitem)
    if repeated is None:
        return (yield)
    # Outermost wrapper (tryfirst): pytest-memray's wrapper, if any, wraps this one.
    original, pyfuncitem.obj = pyfuncitem.obj, repeated
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """A ``unittest.TestCase`` method is not called through ``pytest_pyfunc_call``: pytest
    installs ``item.obj`` on the test case and runs it, so that is where the body is swapped
    (``setUp`` and ``tearDown`` run once around all the calls, as fixtures do)."""
    from _pytest.unittest import TestCaseFunction

    # An async test case's methods run on its own loop (IsolatedAsyncioTestCase): left alone.
    marked_async = item.get_closest_marker(MARKER) and inspect.iscoroutinefunction(
        getattr(item, "obj", None)
    )
    repeated = (
        _repeated_body(item) if isinstance(item, TestCaseFunction) and not marked_async else None
    )
    if repeated is None:
        return (yield)
    original = item.obj
    item.obj = functools.update_wrapper(lambda: repeated(), original)
    try:
        return (yield)
    finally:
        item.obj = original


def _repeated_body(item: pytest.Function) -> Callable[..., None] | None:
    """The test body that runs the check, or None when the test runs as it is."""
    marker = item.get_closest_marker(MARKER)
    if marker is None and not item.config.getoption(SUITE_OPTION):
        return None
    if marker is None:
        reason = _cannot_repeat(item)
        if reason is not None:
            _record_not_checked(item, reason)
            return None
    from leaklab import callleak, pytest_harness

    original = item.obj
    origin = str(item.path)

    def repeated(**funcargs: Any) -> None:
        call = functools.partial(original, **funcargs)
        stores = pytest_harness.find_stores(item)
        if marker is not None:
            result = callleak.measure(
                pytest_harness.rolled_back(call, stores), marker_options(marker), origin=origin
            )
        else:
            result = _check_unmarked(item, call, stores, origin)
            if result is None:
                return
        _record(item, result)
        if result.leaked:
            pytest.fail(result.message(item.name), pytrace=False)

    return repeated


def _cannot_repeat(item: pytest.Function) -> str | None:
    """Why an unmarked test is not repeated, seen before it runs (None: it is tried)."""
    if inspect.iscoroutinefunction(item.obj) or inspect.isasyncgenfunction(item.obj):
        return (
            "async test: its event loop belongs to the async plugin (mark it to check it on "
            "leaklab's own loop)"
        )
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, Iterator):
            return f"iterator fixture: {name!r} is consumed by the first call"
    return None


def _check_unmarked(
    item: pytest.Function, call: Callable[[], Any], stores: list[Any], origin: str
) -> callleak.Result | None:
    """``--leaklab`` on an unmarked test: its own first call, then the check within the budget.

    The first call is the test: its failure is the test's failure. After it, anything that
    stops the check (a failure on a later call, the budget) leaves the test passed and
    unchecked, with the reason recorded.
    """
    from _pytest.outcomes import OutcomeException

    from leaklab import callleak, pytest_harness

    budget = item.config.getoption(BUDGET_OPTION)
    options = callleak.Options()
    began = time.perf_counter()
    call()
    first = time.perf_counter() - began
    planned = options.warmup + options.rounds * options.calls
    if first * planned > budget:
        _record_not_checked(
            item,
            f"over budget: one call took {first:.2f} s, the check needs {planned} "
            f"(--leaklab-budget {budget:g} s)",
        )
        return None
    try:
        return callleak.measure(
            pytest_harness.rolled_back(call, stores), options, origin=origin, budget=budget - first
        )
    except callleak.BudgetExceeded as exc:
        if exc.suspected is not None:
            item.user_properties.append((PROPERTY_BYTES, round(exc.suspected, 2)))
            _record_not_checked(item, f"{UNCONFIRMED}: {exc}")
        else:
            _record_not_checked(item, f"over budget: {exc}")
    except (Exception, OutcomeException) as exc:  # noqa: B014 - OutcomeException is a BaseException
        text = str(exc).strip().splitlines()
        detail = f": {text[0][:120]}" if text else ""
        _record_not_checked(
            item, f"not repeatable: a later call raised {type(exc).__name__}{detail}"
        )
    return None


def _record(item: pytest.Item, result: callleak.Result) -> None:
    item.user_properties.append((PROPERTY_STATUS, FLAGGED if result.leaked else CHECKED))
    item.user_properties.append((PROPERTY_BYTES, round(result.bytes_per_call, 2)))
    item.user_properties.append((PROPERTY_BLOCKS, round(result.blocks_per_call, 3)))
    if result.sites:
        top = result.sites[0]
        item.user_properties.append((PROPERTY_SITE, f"{top.location()}  {top.source()}"))
    if not result.leaked:  # a failure's message already carries the summary
        item.add_report_section("call", MARKER, result.summary())


def _record_not_checked(item: pytest.Item, reason: str) -> None:
    item.user_properties.append((PROPERTY_STATUS, f"{NOT_CHECKED}: {reason}"))


class SuiteSummary:
    """Collects every check's outcome from the test reports (so from pytest-xdist's workers
    too) and ends the session with the tests that retain memory per call."""

    def __init__(self, suite: bool) -> None:
        self.suite = suite
        self.checked = 0
        self.flagged: list[tuple[float, float, str, str]] = []
        self.unconfirmed: list[tuple[float, str]] = []
        self.not_checked: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        props = dict(report.user_properties)
        status = props.get(PROPERTY_STATUS)
        if status is None:
            return
        if status in (CHECKED, FLAGGED):
            self.checked += 1
        if status == FLAGGED:
            self.flagged.append(
                (
                    float(props.get(PROPERTY_BYTES, 0)),
                    float(props.get(PROPERTY_BLOCKS, 0)),
                    report.nodeid,
                    str(props.get(PROPERTY_SITE, "")),
                )
            )
        elif str(status).startswith(NOT_CHECKED):
            self.not_checked[_reason_kind(str(status))] += 1
            if _reason_kind(str(status)) == UNCONFIRMED:
                self.unconfirmed.append((float(props.get(PROPERTY_BYTES, 0)), report.nodeid))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.suite or self.flagged):
            return
        from leaklab import units

        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "leaklab: memory retained per call")
        skipped = ", ".join(f"{n} {kind}" for kind, n in self.not_checked.most_common())
        write(
            f"{self.checked} tests checked, {len(self.flagged)} retain memory on every call"
            + (f"; not checked: {skipped}" if skipped else "")
        )
        if self.flagged:
            write(f"{'bytes/call':>11} {'blocks/call':>11}  test  (top allocation site)")
        for per_call, blocks, nodeid, site in sorted(self.flagged, key=lambda row: -row[0]):
            write(
                f"{units.format_size(per_call, signed=True):>11} {blocks:>+11.2f}  "
                f"{_printable(nodeid)}"
            )
            if site:
                write(f"{'':>25}{_printable(site)[:160]}")
        if self.unconfirmed:
            write(
                "retained in every measured round, budget ran out before the confirming rounds "
                "(check alone, or raise --leaklab-budget):"
            )
        for per_call, nodeid in sorted(self.unconfirmed, key=lambda row: -row[0]):
            write(f"{units.format_size(per_call, signed=True):>11} {'':>11}  {_printable(nodeid)}")


def _reason_kind(status: str) -> str:
    """'not checked: over budget: ...' -> 'over budget'."""
    parts = status.split(": ")
    return parts[1] if len(parts) > 1 else status


def _printable(text: str) -> str:
    """Text for the terminal: control characters shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class LeakCheck:
    """The ``leaklab_check`` fixture: ``leaklab_check(fn, *args, calls=..., warmup=..., **kwargs)``.

    Calls ``fn(*args, **kwargs)`` repeatedly (a coroutine function runs on a private
    event loop), fails the test when every round retains memory, and returns the
    :class:`leaklab.callleak.Result` otherwise. Arguments of ``fn`` that share a name
    with an option (``calls``, ``warmup`` ...) go through :func:`functools.partial`.
    """

    def __init__(self, origin: str | None, item: pytest.Item | None = None) -> None:
        self.origin = origin
        self.item = item

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> callleak.Result:
        from leaklab import callleak, pytest_harness

        names = callleak.Options.names()
        options = callleak.Options.from_mapping(
            {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        )
        call = functools.partial(fn, *args, **kwargs)
        stores = pytest_harness.find_stores(self.item) if self.item is not None else []
        result = callleak.measure(
            pytest_harness.rolled_back(call, stores), options, origin=self.origin
        )
        if result.leaked:
            name = getattr(fn, "__qualname__", None) or repr(fn)
            pytest.fail(result.message(f"{name}()"), pytrace=False)
        return result


@pytest.fixture
def leaklab_check(request: pytest.FixtureRequest) -> LeakCheck:
    """Check any callable for memory retained per call:
    ``leaklab_check(fn, *args, calls=..., warmup=...)`` (the options and their defaults:
    :class:`leaklab.callleak.Options`)."""
    return LeakCheck(str(request.path), request.node)
