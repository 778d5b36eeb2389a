"""The payment circuit breaker: a failure rate over distinct operations, one trial at a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.payments.calls import ResilientCalls, RetryPolicy
from agents.payments.circuit import CircuitBreaker
from agents.payments.provider import ProviderError


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> str:
    """The state read afresh (mypy would keep an earlier narrowing)."""
    return breaker.state


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(min_calls=10, failure_rate=0.5, window=30.0, cooldown=5.0, clock=clock)


def test_it_opens_on_a_failure_rate_over_a_minimum_of_operations(breaker: CircuitBreaker) -> None:
    for n in range(9):
        breaker.failed(f"k{n}")
    assert breaker.state == "closed"  # nine failures: fewer operations than min_calls
    for n in range(5):
        breaker.succeeded(f"ok{n}")
    breaker.failed("k9")  # 10 of 15 failed
    assert state_of(breaker) == "open"


def test_below_the_rate_it_stays_closed(breaker: CircuitBreaker) -> None:
    for n in range(6):
        breaker.succeeded(f"ok{n}")
    for n in range(5):
        breaker.failed(f"k{n}")  # 5 of 11
    assert breaker.state == "closed"


def test_one_operation_failing_again_and_again_is_one_failure(breaker: CircuitBreaker) -> None:
    for _ in range(50):
        breaker.failed("charge:o-1")
    assert breaker.state == "closed"
    assert breaker.allow("charge:o-2")


def test_open_refuses_says_when_to_come_back_and_a_successful_trial_closes(
    breaker: CircuitBreaker, clock: Clock,
) -> None:
    for n in range(10):
        breaker.failed(f"k{n}")
    assert breaker.allow("x") is False
    clock.now += 2.0
    assert breaker.retry_after() == pytest.approx(3.0)
    clock.now += 3.0
    assert (breaker.state, breaker.retry_after()) == ("half_open", 0.0)
    assert breaker.allow("x") is True
    assert breaker.allow("y") is False
    breaker.succeeded("x")
    assert breaker.state == "closed"
    assert breaker.allow("y") is True


def test_a_trial_never_reported_lapses_after_a_cool_down(
    breaker: CircuitBreaker, clock: Clock,
) -> None:
    for n in range(10):
        breaker.failed(f"k{n}")
    clock.now += 5.0
    assert breaker.allow("lost") is True  # e.g. its record was cancelled by a rebalance
    assert breaker.allow("next") is False
    clock.now += 5.0
    assert breaker.allow("next") is True


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_calls"):
        CircuitBreaker(min_calls=0, failure_rate=0.5, window=1, cooldown=1)
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker(min_calls=1, failure_rate=1.5, window=1, cooldown=1)


async def test_calls_report_one_outcome_per_operation_retries_included(clock: Clock) -> None:
    breaker = CircuitBreaker(min_calls=2, failure_rate=1.0, window=30.0, cooldown=5.0,
                             clock=clock)

    async def no_sleep(_: float) -> None:
        return None

    calls = ResilientCalls(RetryPolicy(call_timeout=1.0, attempts=4), breaker, sleep=no_sleep)
    made = 0

    async def failing() -> str:
        nonlocal made
        made += 1
        raise ProviderError("503")

    first = await calls.call(failing, key="charge:o-1", what="charge")
    assert (first.code, first.attempts, made) == ("provider_error", 4, 4)
    assert breaker.state == "closed"  # four failed calls, one failed operation
    await calls.call(failing, key="charge:o-2", what="charge")
    assert state_of(breaker) == "open"
    refused = await calls.call(failing, key="charge:o-3", what="charge")
    assert (refused.code, refused.attempts, refused.retry_after, made) == (
        "circuit_open", 0, 5.0, 8)


@given(st.lists(st.tuples(st.integers(0, 7), st.booleans(), st.floats(0, 12)), max_size=60))
def test_it_opens_exactly_when_a_recount_of_the_window_says_so(
    steps: list[tuple[int, bool, float]],
) -> None:
    # The breaker keeps its failure count as outcomes come and go; an independent recount
    # of the same window must always agree on when it opens.
    clock = Clock()
    breaker = CircuitBreaker(min_calls=4, failure_rate=0.5, window=30.0, cooldown=1e9,
                             clock=clock)
    window: dict[str, tuple[float, bool]] = {}
    for key_no, failed, later in steps:
        clock.now += later
        key = f"op-{key_no}"
        if breaker.state != "closed":
            break
        window = {k: v for k, v in window.items() if clock.now - v[0] < 30.0}
        window.pop(key, None)
        window[key] = (clock.now, failed)
        failures = sum(f for _, f in window.values())
        should_open = failed and len(window) >= 4 and failures >= 0.5 * len(window)
        if failed:
            breaker.failed(key)
        else:
            breaker.succeeded(key)
        assert (state_of(breaker) == "open") is should_open, (window, key, failed)
