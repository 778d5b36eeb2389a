"""The analytics routes' inputs: out-of-range times (a 422 naming the field), anonymous
event times, and the per-event rate-limit cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.analytics.event_routes import (
    ANONYMOUS_SKEW,
    MAX_EVENTS,
    EventsBody,
    _checked,
    event_time,
    parse_instant,
)
from gateway.analytics.report_routes import _instant
from gateway.http.ratelimit import POLICIES, RateLimiter
from streams.errors import InvalidInput
from tests.unit.test_ratelimit import MemoryBuckets


class Query:
    def __init__(self, **query: str) -> None:
        self.query = query


@pytest.mark.parametrize("raw", ["9999-12-31", "0001-01-01T00:00:00+14:00",
                                 "9999-12-31T23:59:59-14:00", "2026-12-01T10:00:00"])
def test_a_report_bound_out_of_range_is_a_validation_error_naming_it(raw: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        _instant(Query(**{"from": raw}), "from", None)  # type: ignore[arg-type]
    assert [e.field for e in raised.value.errors] == ["from"]


def test_report_bounds_are_read_in_utc() -> None:
    moment = _instant(Query(to="2026-12-01T12:00:00+02:00"), "to", None)  # type: ignore[arg-type]
    assert moment.isoformat() == "2026-12-01T10:00:00+00:00"
    day = _instant(Query(to="2026-12-01"), "to", None)  # type: ignore[arg-type]
    assert day.isoformat() == "2026-12-01T00:00:00+00:00"


def test_an_event_time_out_of_range_is_a_validation_error_naming_it() -> None:
    body = EventsBody.model_validate({"events": [
        {"type": "checkout.started", "at": "2026-12-01T10:00:00Z"},
        {"type": "checkout.started", "at": "0001-01-01T00:00:00+14:00"},
    ]})
    errors = _checked(body, None)
    assert [e.field for e in errors if e.field.endswith(".at")] == ["events.1.at"]
    assert parse_instant("0001-01-01T00:00:00+14:00") is None


def test_an_anonymous_event_time_is_clamped_to_the_last_seconds_a_signed_in_one_is_not(
) -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    hour_ago = "2026-12-01T09:00:00Z"
    assert event_time(hour_ago, now, now - ANONYMOUS_SKEW) == now - ANONYMOUS_SKEW
    assert event_time("2026-12-01T09:59:58Z", now, now - ANONYMOUS_SKEW) == now - timedelta(
        seconds=2)
    assert event_time(hour_ago, now, None) == now - timedelta(hours=1)
    assert event_time("2026-12-01T11:00:00+00:00", now, None) == now
    assert event_time(None, now, now - ANONYMOUS_SKEW) == now


async def test_a_batch_costs_one_token_per_event() -> None:
    policy = POLICIES["events"]
    limiter = RateLimiter(MemoryBuckets(), prefix="t")
    key = limiter.bucket_key(policy, "ip:198.51.100.7")
    first = limiter.decide_now(policy, key) or await limiter.decide(policy, key)
    assert first.allowed  # the edge's token for the request itself
    assert (await limiter.charge(policy, key, MAX_EVENTS - 1)).allowed
    refused = await limiter.charge(policy, key, 10)
    assert not refused.allowed
    assert refused.retry_after >= 1
    after = limiter.decide_now(policy, key) or await limiter.decide(policy, key)
    assert not after.allowed  # the bucket (no refill here) paid for 100 events, not 100 batches
