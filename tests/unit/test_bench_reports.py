"""The benchmarks' own arithmetic: CPU from /proc and the fixed summary lines."""

from __future__ import annotations

import os
import re
import time

import pytest

from bench.analytics import summary_line as analytics_summary_line
from bench.common import BenchError, BenchResult, CpuMeter, pid_cpu_seconds
from bench.order_ceiling import Step, ceiling_line, rates
from bench.orders import PROCESSES, summary_line

SUMMARY = re.compile(
    r"^orders: offered \d+(\.\d)?/s completed \d+(\.\d)?/s p95 \d+(\.\d)? ms; "
    r"cpu/order worker \d+(\.\d)? ms broker \d+(\.\d)? ms mongo \d+(\.\d)? ms "
    r"gateway \d+(\.\d)? ms total \d+(\.\d)? ms; naive \d+(\.\d)? ms/event$"
)


def test_the_summary_line_has_its_fixed_form_and_total_includes_redis() -> None:
    orders = BenchResult(name="orders", events=620, seconds=20.0, p95_ms=13_312.46)
    per_order = {"worker": 25.04, "broker": 21.0, "mongo": 17.33, "gateway": 7.0, "redis": 1.2}
    assert set(per_order) == set(PROCESSES)
    line = summary_line(100.0, orders, per_order, 0.94)
    assert SUMMARY.match(line), line
    assert line == (
        "orders: offered 100.0/s completed 31.0/s p95 13312.5 ms; cpu/order worker 25.0 ms "
        "broker 21.0 ms mongo 17.3 ms gateway 7.0 ms total 71.6 ms; naive 0.9 ms/event"
    )


def test_cpu_of_this_process_grows_with_the_work_it_does() -> None:
    before = pid_cpu_seconds(os.getpid())
    assert before is not None
    meter = CpuMeter({"me": os.getpid()})
    meter.start()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # spend CPU, not wall time
        pass
    assert meter.stop()["me"] > 0


def test_a_process_gone_during_the_window_is_an_error_not_a_figure() -> None:
    meter = CpuMeter({"ghost": 2**22 + 1})  # above pid_max here: no such process
    meter.start()
    with pytest.raises(BenchError, match="ghost"):
        meter.stop()


ANALYTICS_SUMMARY = re.compile(
    r"^analytics: events \d+/s naive \d+/s ratio \d+\.\d\d; "
    r"cpu/event worker \d+\.\d\d ms naive \d+\.\d\d ms; push p50 \d+ ms p95 \d+ ms$"
)


def test_the_analytics_summary_line_has_its_fixed_form() -> None:
    analytics = BenchResult(name="analytics", events=10_000, seconds=40.0, cpu_seconds=24.4)
    naive = BenchResult(name="naive", events=10_000, seconds=8.0, cpu_seconds=3.0)
    line = analytics_summary_line(analytics, naive, 2.44, 0.3, (449.4, 1604.4, 1700.0))
    assert ANALYTICS_SUMMARY.match(line), line
    assert line == (
        "analytics: events 250/s naive 1250/s ratio 0.20; cpu/event worker 2.44 ms "
        "naive 0.30 ms; push p50 449 ms p95 1604 ms"
    )


CEILING = re.compile(r"^orders ceiling: \d+\.\d/s at saga p95 < 250 ms; above: .+$")


def test_the_ceiling_steps_up_to_the_max_rate_and_names_the_first_rate_that_missed() -> None:
    assert rates(130.0) == [40.0, 60.0, 80.0, 100.0, 125.0, 130.0]
    steps = [
        Step(40.0, 200, 200, 38.9, 120.0),
        Step(60.0, 300, 295, 58.0, 240.0),  # 98.3% completed: still passes
        Step(80.0, 400, 400, 78.0, 251.0),  # p95 over the limit
    ]
    assert [step.passed for step in steps] == [True, True, False]
    line = ceiling_line(steps)
    assert CEILING.match(line), line
    assert line == ("orders ceiling: 60.0/s at saga p95 < 250 ms; above: 80.0/s completed "
                    "400/400 (78.0/s) p95 251.0 ms")


def test_a_step_that_drops_orders_or_never_finishes_fails_the_ceiling() -> None:
    dropped = Step(40.0, 200, 195, 39.0, 100.0)  # 97.5% completed
    timed_out = Step(40.0, 200, 0, 0.0, None, failure="only 12 orders completed within 20s")
    assert not dropped.passed
    assert ceiling_line([timed_out]) == (
        "orders ceiling: 0.0/s at saga p95 < 250 ms; above: 40.0/s failed: only 12 orders "
        "completed within 20s")
    assert ceiling_line([Step(40.0, 200, 200, 39.0, 90.0)]).endswith(
        "above: not reached (max 40.0/s)")
