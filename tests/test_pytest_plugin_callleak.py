"""The repeated-call engine behind the pytest plugin (leaklab.callleak), called directly.

Margins leave room for other Python versions' object sizes and a list's amortised growth
(docs/testing.md).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import itertools
import sys
import threading
import time
import tracemalloc
import types

import pytest

from leaklab import callleak


def test_one_64_byte_object_per_call_is_measured_to_the_byte() -> None:
    """``bytes(31)`` is a 64-byte object; kept in a list it measured +73 B/call
    (the list's pointer array adds ~9 B/call) and exactly +1.00 block/call."""
    kept: list[bytes] = []
    result = callleak.measure(lambda: kept.append(bytes(31)))
    assert result.leaked
    assert 64 <= result.bytes_per_call <= 96
    assert 0.95 <= result.blocks_per_call <= 1.1
    assert result.confirmed_rounds == 4 and len(result.round_bytes) == 8
    assert result.types[0].name == "bytes" and 0.95 <= result.types[0].per_call <= 1.05
    top = result.sites[0]
    assert top.filename == __file__ and "kept.append(bytes(31))" in top.source()
    assert 64 <= top.bytes_per_call <= 100


def test_one_call_per_round_still_catches_one_object_per_call() -> None:
    """The ``-R`` way: a round of a single call retains exactly one block.

    The verdict is the traced bytes'; the block count is process-wide, so a thread left by an
    earlier test that ends or frees its old objects within a round takes blocks off that
    round (once in a busy run of the suite): the median round is held to one block."""
    kept: list[object] = []
    result = callleak.measure(lambda: kept.append(object()), callleak.Options(calls=1, rounds=6))
    assert result.leaked and all(retained > 0 for retained in result.round_bytes)
    assert result.blocks_per_call == 1, result.round_blocks


@pytest.mark.slow  # ten checks beside a busy thread, 20-34 s: the soak job runs it
def test_a_thread_working_beside_the_check_does_not_move_its_rounds() -> None:
    """A thread that wakes every millisecond to make and drop 100 objects, as a suite's leftover
    server, timer and progress-bar threads do (docs/testing.md: how often it moved a round)."""
    stop = threading.Event()

    def work() -> None:
        deadline = time.monotonic() + 60
        while not stop.wait(0.001) and time.monotonic() < deadline:
            junk = [object() for _ in range(100)]
            del junk

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        missed = []
        # Each check costs full collections of the suite's heap; with the switch interval left
        # alone, 5 or 6 checks in 10 missed (docs/testing.md).
        for _ in range(10):
            kept: list[object] = []
            options = callleak.Options(calls=1, rounds=6)
            result = callleak.measure(lambda kept=kept: kept.append(object()), options)
            if not result.leaked:
                missed.append(result.round_blocks)
        assert not missed, f"{len(missed)} of 10 missed: {missed[:2]}"
    finally:
        stop.set()
        thread.join(timeout=10)


def test_clean_function_retains_nothing() -> None:
    """Temporaries only: every round measured exactly 0 B retained."""
    result = callleak.measure(lambda: [object() for _ in range(50)])
    assert not result.leaked
    assert abs(result.bytes_per_call) < 1
    assert result.confirmed_rounds == 0 and not result.sites


def test_bounded_cache_grows_then_passes() -> None:
    """An LRU cache of 40 entries filled by the measured rounds themselves: the first
    rounds retain (measured +8.7 KB, +5.0 KB with warmup=0), the later ones do not."""
    counter = [0]

    @functools.lru_cache(maxsize=40)
    def render(n: int) -> str:
        return "x" * 150 + f"{n:06d}"

    def call() -> None:
        counter[0] += 1
        render(counter[0])

    result = callleak.measure(call, callleak.Options(warmup=0))
    assert not result.leaked
    assert result.round_bytes[0] > 40 * 150 / 4  # the cache really was filling
    assert result.round_bytes[-1] <= 0


def test_a_bound_filled_past_the_measured_rounds_passes_by_patience() -> None:
    """A log of 100 entries, one every 5th call, is full after 500 calls: every one of the
    first 105 calls' rounds retains (an entry per round at least), so ``patience=0`` calls it
    a leak; the default patience calls on to 1,000 before the confirming rounds, and those
    together retain less than one round of the filling."""
    log: collections.deque[bytes] = collections.deque(maxlen=100)
    counter = itertools.count()

    def call() -> None:
        if next(counter) % 5 == 0:
            log.append(bytes(200))

    impatient = callleak.measure(call, callleak.Options(patience=0))
    assert impatient.leaked and impatient.patience_calls == 0 and impatient.calls_made == 205

    log.clear()
    counter = itertools.count()
    result = callleak.measure(call)
    assert not result.leaked
    assert result.patience_calls == 1000 - 105 and result.calls_made == 1100
    # Together, not each: a busy machine can move one round and the next back (docs/testing.md).
    filling, confirming = result.round_bytes[:4], result.round_bytes[4:]
    assert min(filling) > 0 and sum(confirming) < min(filling), result.round_bytes


def test_lazy_import_and_interning_happen_once() -> None:
    """With no warm-up at all, the first round pays for the import and the interning
    (measured 14 KB); the rounds after it retained nothing, so it passes. (Once, after
    the other test files had run in the same process, one later round measured +1.9 MB
    from outside the function; one disturbed round cannot fail a check, so at least
    two of the three later rounds must be flat.)"""
    name = "leaklab_lazy_test_module"
    source = "TABLE = [bytearray(64) for _ in range(100)]\n"

    def call() -> None:
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            exec(compile(source, name, "exec"), module.__dict__)
            sys.modules[name] = module
        for k in range(30):
            sys.intern(f"leaklab-lazy-{k}")

    try:
        result = callleak.measure(call, callleak.Options(warmup=0))
    finally:
        sys.modules.pop(name, None)
    assert not result.leaked
    assert result.round_bytes[0] > 100 * 64
    assert sum(retained <= 0 for retained in result.round_bytes[1:4]) >= 2


def test_limit_is_per_call() -> None:
    kept: list[bytes] = []
    keep = lambda: kept.append(bytes(31))  # noqa: E731
    assert not callleak.measure(keep, callleak.Options.from_mapping({"max_per_call": "1KB"})).leaked
    assert callleak.measure(
        keep, callleak.Options.from_mapping({"max_per_call": "16B/call"})
    ).leaked


def test_coroutines_run_on_one_private_loop() -> None:
    pending: list[asyncio.Future[None]] = []
    loops: set[int] = set()

    async def leaky() -> None:
        loop = asyncio.get_running_loop()
        loops.add(id(loop))
        pending.append(loop.create_future())

    result = callleak.measure(leaky)
    assert result.leaked
    assert len(loops) == 1
    assert any(t.name == "_asyncio.Future" for t in result.types)


def test_coroutine_inside_a_running_loop_is_refused() -> None:
    async def inner() -> None:
        return None

    async def outer() -> None:
        callleak.measure(inner)

    with pytest.raises(RuntimeError, match="event loop is already running"):
        asyncio.run(outer())


def test_exception_propagates_and_interpreter_state_is_restored() -> None:
    calls = [0]

    def boom() -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise ValueError("third call")

    was_tracing = tracemalloc.is_tracing()
    with pytest.raises(ValueError, match="third call"):
        callleak.measure(boom)
    assert tracemalloc.is_tracing() == was_tracing
    assert gc.get_freeze_count() == 0


def test_existing_tracing_is_left_running() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already tracing in this session")
    tracemalloc.start(3)
    try:
        kept: list[object] = []
        assert callleak.measure(lambda: kept.append(object())).leaked
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cals": 3}, "unknown option 'cals'; accepted options: max_per_call"),
        ({"rounds": 0}, "rounds must be an integer >= 1, got 0"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"calls": 2.5}, "calls must be an integer >= 1, got 2.5"),
        ({"max_per_call": "1KB/s"}, "max_per_call is per call, not per time"),
        ({"max_per_call": "lots"}, "not a size: 'lots'; accepted forms:"),
    ],
)
def test_bad_options_name_the_option_and_the_accepted_forms(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(callleak.OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        callleak.Options.from_mapping(values)


def test_option_forms() -> None:
    assert callleak.Options.from_mapping({"max_per_call": 64}).max_per_call == 64
    assert callleak.Options.from_mapping({"max_per_call": "1KB"}).max_per_call == 1000
    assert callleak.Options.from_mapping({"max_per_call": "16B/call"}).max_per_call == 16
    assert callleak.Options.from_mapping({"warmup": 0, "calls": 3}) == callleak.Options(
        warmup=0, calls=3
    )


def test_message_reads_as_a_diagnosis() -> None:
    registry: dict[int, dict[str, int]] = {}

    def subscribe() -> None:
        registry[len(registry)] = {"n": len(registry)}

    result = callleak.measure(subscribe, callleak.Options(calls=10), origin=__file__)
    text = result.message("subscribe()")
    assert text.startswith("leaklab: subscribe() retains memory on every call: +")
    assert (
        "top growing allocation sites" in text
        and 'registry[len(registry)] = {"n": len(registry)}' in text
    )
    assert "growing object types" in text and "dict" in text


def test_attribute_names_built_per_call_are_not_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja2 (a dependency of memray) looks up ``getattr(self, f"visit_{kind}")`` with a new
    name string each time, and CPython's type attribute cache keeps the last name of each of
    its 4,096 slots: 0 B in every round with the cache cleared before each reading; without,
    the first four rounds measured 43 KB (and the check failed)."""
    jinja2 = pytest.importorskip("jinja2")

    def render() -> None:
        jinja2.Template("Content").render()

    result = callleak.measure(render)
    assert not result.leaked and result.bytes_per_call < 8
    monkeypatch.setattr(callleak, "_clear_type_cache", lambda: None)
    uncleared = callleak.measure(render)
    assert sum(uncleared.round_bytes[:4]) > 8_000
