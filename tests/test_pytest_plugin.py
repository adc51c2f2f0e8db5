"""The pytest plugin, exercised through real inner pytest sessions (pytester).

Object sizes differ between Python versions: the margins leave room for them
(docs/testing.md).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_leaky_test_fails_naming_site_and_type(pytester: pytest.Pytester) -> None:
    """One 64-byte ``bytes`` kept per call: measured +67 B/call (+1.00 blocks/call) in the
    median round, the bytes over 64 being the list's own amortised growth (+73 B/call in
    the first rounds; +64 B in the confirming ones, 1,000 calls in, where it resizes rarely)."""
    pytester.makepyfile(
        test_inner="""
        import pytest
        KEPT = []

        @pytest.mark.leaklab
        def test_leaky():
            KEPT.append(bytes(31))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*leaklab: test_leaky retains memory on every call: +[67]? B/call (+1.00 "
                "blocks/call, median round)*"
            ),
            "*top growing allocation sites*",
            "*B/call*+1.0? blocks/call*test_inner.py:6*KEPT.append(bytes(31))*",
            "*growing object types*",
            "*+1.00*bytes*",
        ]
    )


def test_site_in_helper_module_names_the_test_line_that_called_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        registry="""
        _LISTENERS = {}

        def subscribe(name):
            _LISTENERS.setdefault(name, []).append({"name": name, "n": len(_LISTENERS)})
        """,
        test_inner="""
        import pytest
        import registry

        @pytest.mark.leaklab(calls=10)
        def test_subscribe():
            registry.subscribe("topic")
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*registry.py:4*_LISTENERS.setdefault(name, []).append*",
            "*called from test_inner.py:6*registry.subscribe(*",
            "*+1.00*dict*",
        ]
    )


def test_body_is_called_exactly_warmup_plus_rounds_times_calls(pytester: pytest.Pytester) -> None:
    """A clean marked body runs warmup + rounds x calls times (no confirming rounds);
    an unmarked test runs once."""
    pytester.makepyfile(
        test_inner="""
        import pytest
        COUNT = {"marked": 0, "plain": 0}

        @pytest.mark.leaklab(warmup=3, calls=7, rounds=2)
        def test_marked():
            COUNT["marked"] += 1

        def test_plain():
            COUNT["plain"] += 1

        def test_zz_counts():
            assert COUNT == {"marked": 3 + 2 * 7, "plain": 1}
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--junit-xml=out.xml", "-rP")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*Captured leaklab call*", "no memory retained per call: 0 B/call*"]
    )
    junit = (pytester.path / "out.xml").read_text()
    assert '<property name="leaklab_bytes_per_call" value="0.0" />' in junit
    assert junit.count("leaklab_bytes_per_call") == 1  # unmarked tests carry nothing


def test_warmup_effects_do_not_fail(pytester: pytest.Pytester) -> None:
    """Growth that happens once, or only until a bound, passes: a cache filled on the
    first call, a module imported lazily by the body, interned strings, and an LRU cache
    that fills up to 32 entries during the measured rounds (it grows in the first rounds,
    then stays flat, so not every round retains)."""
    pytester.makepyfile(
        lazymod="""
        TABLE = [bytearray(100) for _ in range(200)]
        """,
        test_inner="""
        import functools
        import importlib
        import sys
        import pytest

        _ONCE = {}
        _N = [0]

        @pytest.mark.leaklab
        def test_cache_filled_once():
            if "table" not in _ONCE:
                _ONCE["table"] = [bytearray(64) for _ in range(100)]
            assert len(_ONCE["table"]) == 100

        @pytest.mark.leaklab
        def test_lazy_import():
            module = importlib.import_module("lazymod")
            assert len(module.TABLE) == 200

        @pytest.mark.leaklab
        def test_interned_strings():
            for k in range(50):
                sys.intern("leaklab-attribute-" + str(k))

        @functools.lru_cache(maxsize=32)
        def render(n):
            return "x" * 200 + str(n)

        @pytest.mark.leaklab(warmup=0)
        def test_bounded_cache_fills_during_rounds():
            _N[0] += 1
            render(_N[0])
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rP")
    result.assert_outcomes(passed=4)


def test_limit_lets_small_retention_pass(pytester: pytest.Pytester) -> None:
    """``max_per_call`` is the allowance: +73 B/call passes under 1KB, fails under 16B."""
    pytester.makepyfile(
        test_inner="""
        import pytest
        KEPT = []

        @pytest.mark.leaklab(max_per_call="1KB")
        def test_allowed():
            KEPT.append(bytes(31))

        @pytest.mark.leaklab("16B")
        def test_positional_limit():
            KEPT.append(bytes(31))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_positional_limit*"])


def test_async_marked_test_runs_on_its_own_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import asyncio
        import pytest
        PENDING = []

        @pytest.mark.leaklab
        async def test_async_leaky():
            PENDING.append(asyncio.get_running_loop().create_future())

        @pytest.mark.leaklab
        async def test_async_clean():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_async_leaky retains memory on every call*", "*_asyncio.Future*"]
    )


def test_bad_marker_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.leaklab(cals=3)
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "*test_inner.py::test_typo: @pytest.mark.leaklab: unknown option 'cals'; accepted "
                "options: max_per_call*calls*"
            )
        ]
    )


def test_bad_limit_names_accepted_forms(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.leaklab(max_per_call="64 bananas")
        def test_bad():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*max_per_call: not a size: '64 bananas'; accepted forms:*"])


def test_fixture_checks_any_callable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import asyncio
        KEPT = []

        def keep(n, *, tag):
            KEPT.append((tag, bytearray(n)))

        def drop(n, *, tag):
            return (tag, bytearray(n))

        async def keep_async():
            await asyncio.sleep(0)
            KEPT.append(object())

        def test_clean_passes_and_reports(leaklab_check):
            result = leaklab_check(drop, 100, tag="x", calls=10)
            assert not result.leaked
            assert result.calls_measured == 40
            assert result.bytes_per_call == 0

        def test_leaky_fails(leaklab_check):
            leaklab_check(keep, 100, tag="x", calls=10)

        def test_async_leaky_fails(leaklab_check):
            leaklab_check(keep_async)

        def test_bad_option(leaklab_check):
            leaklab_check(drop, 1, tag="x", rounds=0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*leaklab: keep() retains memory on every call*",
            "*test_inner.py:5*KEPT.append((tag, bytearray(n)))*",
        ]
    )
    result.stdout.fnmatch_lines(["*leaklab: keep_async() retains memory on every call*"])
    result.stdout.fnmatch_lines(["*OptionError: rounds must be an integer >= 1, got 0*"])


def test_coexists_with_pytest_memray(pytester: pytest.Pytester) -> None:
    """With ``--memray`` both plugins run on the same test: leaklab repeats the body
    inside memray's single tracker, and memray's marker is still evaluated."""
    pytester.makepyfile(
        test_inner="""
        import pytest
        KEPT = []

        @pytest.mark.leaklab
        def test_clean():
            [object() for _ in range(10)]

        @pytest.mark.leaklab
        def test_leaky():
            KEPT.append(bytes(31))

        CACHE = []

        @pytest.mark.limit_leaks("1 KB")
        @pytest.mark.leaklab
        def test_memray_marker_too():
            if not CACHE:
                CACHE.extend(bytearray(100) for _ in range(100))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--memray")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*MEMRAY REPORT*"])
    result.stdout.fnmatch_lines(["*leaklab: test_leaky retains memory on every call*"])
    # A cache filled once passes leaklab's check; memray's marker, evaluated on the same
    # test, counts it as leaked: both plugins ran.
    result.stdout.fnmatch_lines(
        ["*test_memray_marker_too*", "*Test was allowed to leak 1.0KiB per location*"]
    )
