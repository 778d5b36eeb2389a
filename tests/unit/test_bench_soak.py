"""The soak benchmark's arithmetic: memory growth fit, the request mix, its fixed last line."""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter

import pytest

from bench.common import BenchError
from bench.soak import pid_memory_mb
from bench.soak_load import EXPECTED, WEIGHTS
from bench.soak_stats import (
    KindStats,
    after_warmup,
    growth_mb_per_minute,
    missed,
    mix,
    summary_line,
)


def test_growth_is_the_least_squares_slope_in_mb_per_minute() -> None:
    steady = [(t, 100.0 + 0.05 * t) for t in range(0, 300, 10)]  # 0.05 MB/s
    assert growth_mb_per_minute(steady) == pytest.approx(3.0)
    flat = [(t, 250.0) for t in range(0, 120, 10)]
    assert growth_mb_per_minute(flat) == pytest.approx(0.0)


def test_one_release_at_the_end_does_not_decide_the_growth() -> None:
    # Flat, then the allocator hands 40 MB back at the last sample: last minus first would
    # say -40 MB over the window; the fit weighs every sample.
    samples = [(float(t), 300.0) for t in range(60, 300, 10)] + [(300.0, 260.0)]
    assert -10.0 < growth_mb_per_minute(samples) < 0.0


def test_growth_needs_samples_at_two_times() -> None:
    with pytest.raises(BenchError, match="two times"):
        growth_mb_per_minute([(60.0, 100.0), (60.0, 101.0)])
    with pytest.raises(BenchError):
        growth_mb_per_minute([])


def test_the_fit_starts_at_the_end_of_the_warm_up() -> None:
    samples = [(0.0, 50.0), (30.0, 150.0), (60.0, 200.0), (70.0, 200.5)]
    assert after_warmup(samples, 60.0) == [(60.0, 200.0), (70.0, 200.5)]
    # The warm-up's climb (150 MB in a minute) is not growth.
    assert growth_mb_per_minute(after_warmup(samples, 60.0)) == pytest.approx(3.0)


def test_the_mix_holds_each_kind_by_its_weight_spread_over_the_cycle() -> None:
    cycle = mix(WEIGHTS)
    assert Counter(cycle) == Counter(WEIGHTS)
    assert set(EXPECTED) == set(WEIGHTS)
    # Spread: the heaviest kinds never come twice running, the lightest not in one half.
    assert all(a != b for a, b in itertools.pairwise(cycle))
    half = cycle[: len(cycle) // 2]
    assert Counter(half)["upload"] == 1
    assert Counter(half)["events"] == 1
    assert mix({"a": 1, "b": 3}) == ["b", "a", "b", "b"]


def test_a_kind_without_a_positive_weight_is_refused() -> None:
    with pytest.raises(BenchError, match="positive weight"):
        mix({"a": 2, "b": 0})
    with pytest.raises(BenchError):
        mix({})


def test_kind_stats_time_only_the_expected_answers_and_count_5xx_apart() -> None:
    stats = KindStats("order", 202)
    for latency_ms in (10, 20, 30, 40):
        stats.record(202, latency_ms * 1_000_000)
    stats.record(409, 1_000_000)
    stats.record(503, 2_000_000)
    stats.record(None, 30_000_000_000)
    stats.fail("never ended", 2)
    assert (stats.count, stats.errors, stats.server_errors) == (9, 5, 1)
    summary = stats.summary(seconds=3.0)
    assert summary["rate"] == 3.0
    assert (summary["p50_ms"], summary["p99_ms"]) == (20.0, 40.0)
    assert summary["statuses"] == {"202": 4, "409": 1, "503": 1, "no answer": 1,
                                   "never ended": 2}
    assert KindStats("me", 200).summary(1.0)["p99_ms"] is None


SUMMARY = re.compile(
    r"^soak: \d+\.\d min \d+\.\d req/s, worst p99 \d+ ms \(\w+\), errors \d+\.\d\d%, "
    r"5xx \d+; worst growth \w+ [+-]\d+\.\d\d MB/min \(target 5\): (met|MISSED: .+)$"
)


def _kinds() -> list[dict[str, object]]:
    reads = KindStats("product", 200)
    orders = KindStats("order", 202)
    for i in range(100):
        reads.record(200, (i + 1) * 100_000)
        orders.record(202 if i else 400, (i + 1) * 1_000_000)
    return [reads.summary(10.0), orders.summary(10.0)]


def test_the_summary_line_has_its_fixed_form_when_every_target_is_met() -> None:
    growth = {"worker": 1.234, "gateway": -0.5, "broker": 0.2}
    line = summary_line(5.0, _kinds(), growth, 0)
    assert SUMMARY.match(line), line
    assert line == (
        "soak: 5.0 min 20.0 req/s, worst p99 100 ms (order), errors 0.50%, 5xx 0; "
        "worst growth worker +1.23 MB/min (target 5): met"
    )


def test_the_summary_line_says_which_target_was_missed_and_by_which_process() -> None:
    growth = {"worker": 7.5, "gateway": 5.01, "mongo": 2.0}
    assert missed(growth, 3) == ["3 5xx", "worker grows 7.50 MB/min",
                                 "gateway grows 5.01 MB/min"]
    line = summary_line(2.0, _kinds(), growth, 3)
    assert SUMMARY.match(line), line
    assert line.endswith("worst growth worker +7.50 MB/min (target 5): MISSED: 3 5xx, "
                         "worker grows 7.50 MB/min, gateway grows 5.01 MB/min")


def test_rss_and_its_anonymous_part_are_read_from_proc_for_a_live_process_only() -> None:
    memory = pid_memory_mb(os.getpid())
    assert memory is not None
    rss, anon = memory
    assert rss > 1.0
    assert 0.0 < anon <= rss
    assert pid_memory_mb(2**22 + 1) is None  # above pid_max here: no such process
