"""``pytest --leaklab``: every test through the repeated-call check, with pytest-xdist too."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def _one_warning_of_our_own(result) -> None:
    """The inner suite's own DeprecationWarning is reported once. (pytest also warns, once per
    process, about modules a test already imported when it marks plugins for rewriting: those
    depend on what ran before in this process and are not counted.)"""
    assert result.stdout.str().count("DeprecationWarning: old api") == 1, result.stdout.str()


SUITE = """
import logging, time, warnings
import pytest

KEPT = []
BIG = []
STATE = {"calls": 0}

def test_clean():
    [object() for _ in range(10)]

def test_keeps_bytes():
    KEPT.append(bytes(100))

def test_keeps_more():
    BIG.append(bytearray(1000))

def test_logs_and_warns(caplog):
    logging.getLogger("svc").warning("handled request %d", 1)
    warnings.warn("old api", DeprecationWarning)
    assert len(caplog.records) == 1

def test_fails_on_second_call():
    STATE["calls"] += 1
    assert STATE["calls"] == 1

def test_slow():
    time.sleep(0.3)

@pytest.fixture(params=[1, 2])
def numbers(request):
    return iter(range(request.param))

def test_consumes_a_parametrized_iterator(numbers):
    assert list(numbers)

@pytest.mark.leaklab(max_per_call="1KB")
def test_marked_keeps_its_own_limit():
    KEPT.append(bytes(100))

def test_fails():
    assert 1 == 2
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # The budget: each check takes 0.7 s beside two CPU-bound processes on its own, more than
    # 2 s inside this suite's process (its collections walk the outer suite's heap) on a busy
    # machine. 5 s leaves room for both; test_slow (0.3 s a call) stays over it.
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest("-p", "no:cacheprovider", "--leaklab", "--leaklab-budget", "5", *args)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_suite_is_checked_and_summarised(pytester: pytest.Pytester, workers: list[str]) -> None:
    result = _run(pytester, *workers)
    # Two retaining tests and the plain failure fail; everything else passes, checked or not.
    result.assert_outcomes(passed=7, failed=3)
    _one_warning_of_our_own(result)
    result.stdout.fnmatch_lines(
        [
            "*= leaklab: memory retained per call =*",
            "5 tests checked, 2 retain memory on every call; not checked: 2 iterator fixture, "
            "1 not repeatable, 1 over budget",
            "*bytes/call*blocks/call*test*(top allocation site)*",
            "*+1.0? KB*+2.00*test_suite.py::test_keeps_more",
            "*test_suite.py:15*BIG.append(bytearray(1000))",
            "*+1?? B*+1.00*test_suite.py::test_keeps_bytes",
            "*test_suite.py:12*KEPT.append(bytes(100))",
            "*= short test summary info =*",
        ]
    )
    result.stdout.no_fnmatch_line("*test_logs_and_warns - *")


def test_reasons_are_recorded_in_junit(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--junit-xml=out.xml", "-k", "second or slow or clean")
    result.assert_outcomes(passed=3)
    junit = (pytester.path / "out.xml").read_text()
    assert '<property name="leaklab" value="checked" />' in junit
    assert (
        '<property name="leaklab" value="not checked: not repeatable: a later call raised '
        'AssertionError: assert 2 == 1" />'
    ) in junit
    assert 'value="not checked: over budget: one call took 0.3' in junit


def test_without_the_option_unmarked_tests_run_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "not marked")
    result.assert_outcomes(passed=8, failed=1)
    _one_warning_of_our_own(result)
    result.stdout.no_fnmatch_line("*memory retained per call*")


def test_bad_budget_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--leaklab", "--leaklab-budget", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--leaklab-budget must be a positive number of seconds, got 0.0*"]
    )


def test_unittest_methods_are_checked_with_setup_once(pytester: pytest.Pytester) -> None:
    """``unittest.TestCase`` methods are repeated too (pytest runs them without
    ``pytest_pyfunc_call``); ``setUp`` runs once around all the calls."""
    pytester.makepyfile(
        test_cases="""
        import logging, unittest
        import pytest
        KEPT = []
        SETUPS = []

        class Cases(unittest.TestCase):
            def setUp(self):
                SETUPS.append(1)

            def test_clean(self):
                [object() for _ in range(10)]

            def test_keeps(self):
                KEPT.append(bytes(64))

            def test_asserts_logs(self):
                with self.assertLogs("svc"):
                    logging.getLogger("svc").warning("handled")

            @pytest.mark.leaklab(max_per_call="1KB")
            def test_marked(self):
                KEPT.append(bytes(64))

        def test_zz_setup_ran_once_per_test():
            assert len(SETUPS) == 4
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--leaklab")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "5 tests checked, 1 retain memory on every call",
            "*+1?? B*+1.00*test_cases.py::Cases::test_keeps",
        ]
    )


def test_budget_running_out_while_confirming_is_listed_as_unconfirmed(
    pytester: pytest.Pytester,
) -> None:
    """4 ms per call: the 105 calls of the measured rounds take ~0.45 s, well within the
    1.5 s budget; the 895 patience calls before the confirming rounds would take 3.6 s."""
    pytester.makepyfile(
        test_slow_leak="""
        import time
        KEPT = []

        def test_slow_leak():
            KEPT.append(bytes(100))
            time.sleep(0.004)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--leaklab", "--leaklab-budget", "1.5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "0 tests checked, 0 retain memory on every call; not checked: 1 over budget, "
                "unconfirmed"
            ),
            "retained in every measured round, budget ran out before the confirming rounds*",
            "*+1?? B*test_slow_leak.py::test_slow_leak",
        ]
    )
