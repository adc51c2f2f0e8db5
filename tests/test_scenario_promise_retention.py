"""scenarios/promise_retention.py through the real runner: each way of not releasing a promise
grows by its documented amount per step, and the fixed calls do not grow.

Every run here is a real child process making real requests to an aiohttp upstream on 127.0.0.1.
"""

from __future__ import annotations

import pytest
from scenario_support import module, run_scenario

SCENARIO = "promise_retention"
LEAKY = ("pending_map", "task_set", "race", "tracebacks", "executor_futures")

#: Allocated blocks are counted exactly; the slope only wobbles with what is in flight.
BLOCKS_MARGIN = 0.15
#: Two variants run with larger bodies, so the body-proportional part of the model is checked too.
PAYLOAD = {"tracebacks": "8KB", "executor_futures": "8KB"}
#: RSS adds allocator overhead on top of the retained bytes: measured RSS/expected 1.00-1.06.
RSS_LOW, RSS_HIGH = 0.8, 1.35
#: pending_map keeps ~50 ms of upstream calls in flight, and how many depends on the step rate
#: of the moment: on a busy machine (two CPU-bound processes beside the test) 3 s runs measured
#: 3.81-4.45 blocks/step, one 4.89 under a full suite; 6 s runs measured 3.98-4.12 (6 runs).
DURATION_S = {"pending_map": 6.0}


@pytest.mark.parametrize("variant", LEAKY)
def test_leaky_variant_grows_by_its_expected_amount_per_step(tmp_path, variant):
    """A 3 s run (1 s warm-up) grows in allocated blocks within 15% and in RSS within
    -20%/+35% of ``promise_retention.expected_per_step``, and the verdict is LEAK.

    Measured on 2 loaded cores (6 s runs), expected -> measured per step:
    pending_map 4 -> 3.86 blocks, 2,306 -> 2,320 B RSS (520 steps/s: every call waits 1 ms);
    task_set 6 -> 5.97 blocks, 2,763 -> 2,900 B (1,100 steps/s);
    race 20 -> 20.05 blocks, 3,947 -> 4,122 B (1,230 steps/s);
    tracebacks 9 -> 9.03 blocks, 4,866 -> 4,948 B (2,360 steps/s);
    executor_futures 24 -> 24.03 blocks, 4,360 -> 4,570 B (1,740 steps/s).
    With 8 KB payloads: tracebacks 16,866 -> 16,980 B, executor_futures 10,360 -> 10,870 B.
    """
    params = {"payload_size": PAYLOAD[variant]} if variant in PAYLOAD else {}
    measured = run_scenario(
        tmp_path,
        SCENARIO,
        variant,
        duration_s=DURATION_S.get(variant, 3.0),
        warmup="1s",
        params=params,
    )
    assert measured.result.status == "completed", measured.summary()
    assert measured.result.errors == 0
    expected_bytes, expected_blocks = module(SCENARIO).expected_per_step(variant, measured.params)
    blocks = measured.growth("blocks").bytes_per_step
    rss = measured.growth("rss").bytes_per_step
    assert abs(blocks - expected_blocks) <= BLOCKS_MARGIN * expected_blocks, measured.summary()
    assert RSS_LOW * expected_bytes <= rss <= RSS_HIGH * expected_bytes, measured.summary()
    assert measured.analysis.verdict.label == "LEAK", measured.summary()


def _check_fixed(measured, steps: int, *, exhaustive: bool) -> None:
    assert measured.result.status == "completed", measured.summary()
    assert measured.result.steps == steps
    blocks = measured.growth("blocks")
    rss_hi = measured.growth("rss").ci95_per_step[1]
    if exhaustive:
        assert blocks.ci95_per_step[0] >= -0.05 and blocks.ci95_per_step[1] <= 0.05, (
            measured.summary()
        )
        assert rss_hi < 16, measured.summary()
        assert measured.analysis.verdict.label in ("NO_LEAK", "PLATEAU"), measured.summary()
    else:
        assert abs(blocks.bytes_per_step) < 0.15 and blocks.ci95_per_step[1] < 0.5, (
            measured.summary()
        )
        assert rss_hi < 50, measured.summary()
        assert measured.analysis.verdict.label != "LEAK", measured.summary()


def test_fixed_does_not_grow(tmp_path):
    """8,000 steps (2,000 of warm-up) rotating through the five fixed patterns: blocks grow
    less than 0.15/step (CI below 0.5, an eighth of the smallest leak, pending_map's 4),
    RSS less than 50 B/step (the smallest leak keeps ~2.3 KB/step), verdict not LEAK.

    The 20,000-step check below is the acceptance run; this one keeps the default suite
    short. In 8,000 steps the sampled blocks jitter by +-700 (garbage waiting for a gen-0
    collection, the cyclic garbage of each aborted connection, tasks in flight), which is
    too few for NO_LEAK: three runs gave blocks 0.048, 0.044, 0.038/step (CI upper
    0.10-0.12), RSS 0-4.6 B/step (CI upper below 5.4), verdict INCONCLUSIVE, 570-780 steps/s.
    """
    _check_fixed(
        run_scenario(tmp_path, SCENARIO, "fixed", steps=8_000, warmup="2000"),
        8_000,
        exhaustive=False,
    )


@pytest.mark.slow
def test_fixed_does_not_grow_over_20000_steps(tmp_path):
    """20,000 steps (5,000 of warm-up): the blocks slope is indistinguishable from zero
    (95% CI inside +-0.05 blocks/step), RSS under 16 B/step, verdict NO_LEAK or PLATEAU.

    Measured: blocks -0.004/step (95% CI -0.019..0.008) and 0.003 (CI -0.018..0.025),
    RSS 0.9 B/step (CI 0.07..1.3), verdict NO_LEAK, 16-32 s; a 60 s run (71,000 steps)
    gave -0.0016 blocks/step (CI -0.007..0.005).
    """
    _check_fixed(
        run_scenario(tmp_path, SCENARIO, "fixed", steps=20_000, warmup="5000"),
        20_000,
        exhaustive=True,
    )
