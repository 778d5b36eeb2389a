"""POST /v1/analytics/events through a real gateway, Redis and broker: what a batch costs,
what its rate-limit headers say, and the event times it records."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from config import Settings
from gateway.analytics.event_routes import ANONYMOUS_SKEW
from gateway.identity.auth import TokenService
from tests.support.http import gateway_client
from tests.support.orders import read_all

pytestmark = pytest.mark.integration
RATELIMIT = re.compile(r'^"events";r=(?P<r>\d+);t=(?P<t>\d+)$')
HOUR = 3600  # the test limit's refill: one token per hour, so nothing refills meanwhile


def batch(size: int, **event: str) -> dict[str, object]:
    return {"events": [{"type": "checkout.started", "sessionId": "sess-rl"} | event] * size}


def limited(settings: Settings) -> Settings:
    return dataclasses.replace(settings, rate_limit_enabled=True,
                               rate_limits=f"events=1/{HOUR}:10")


async def test_a_batch_costs_one_token_per_event(topics: Settings) -> None:
    async with gateway_client(limited(topics)) as client:
        first = await client.post("/v1/analytics/events", json=batch(4))
        assert first.status == 202, await first.text()
        refused = await client.post("/v1/analytics/events", json=batch(7))  # 6 tokens left
        assert refused.status == 429
        assert (await refused.json())["code"] == "RATE_LIMITED"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await client.post("/v1/analytics/events", json=batch(1))).status == 429


async def test_a_batch_answers_the_limit_left_after_it(topics: Settings) -> None:
    async with gateway_client(limited(topics)) as client:
        accepted = await client.post("/v1/analytics/events", json=batch(4))
        assert accepted.status == 202, await accepted.text()
        # Four of ten tokens spent: six left, full again once four have refilled.
        assert accepted.headers["X-RateLimit-Remaining"] == "6"
        reset = int(accepted.headers["X-RateLimit-Reset"])
        assert 4 * HOUR - 5 <= reset <= 4 * HOUR
        assert accepted.headers["RateLimit"] == f'"events";r=6;t={reset}'

        # Seven wanted, six there: refused, and the six are spent (no probing for free).
        refused = await client.post("/v1/analytics/events", json=batch(7))
        assert refused.status == 429
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        # Retry-After is when the whole batch could pass: seven tokens, from an empty bucket.
        retry = int(refused.headers["Retry-After"])
        assert 7 * HOUR - 5 <= retry <= 7 * HOUR
        assert refused.headers["X-RateLimit-Reset"] == str(retry)
        match = RATELIMIT.match(refused.headers["RateLimit"])
        assert match is not None, refused.headers["RateLimit"]
        assert (match["r"], match["t"]) == ("0", str(retry))


async def test_an_anonymous_event_time_is_clamped_a_signed_in_one_is_kept(
    topics: Settings,
) -> None:
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    token = TokenService(topics).issue_access("u-backfill", ["buyer"])
    async with gateway_client(topics) as client:
        anonymous = await client.post("/v1/analytics/events", json=batch(
            1, sessionId="sess-anon", at=hour_ago.isoformat()))
        assert anonymous.status == 202, await anonymous.text()
        sent = datetime.now(UTC)
        signed_in = await client.post(
            "/v1/analytics/events", headers={"Authorization": f"Bearer {token}"},
            json=batch(1, sessionId="sess-user", at=hour_ago.isoformat()))
        assert signed_in.status == 202, await signed_in.text()

    occurred = {}
    for _topic, _key, value in await read_all(topics, ["analytics"]):
        envelope = orjson.loads(value)
        occurred[envelope["data"]["sessionId"]] = datetime.fromisoformat(envelope["occurredAt"])
    assert sent - ANONYMOUS_SKEW - timedelta(seconds=1) <= occurred["sess-anon"] <= sent
    assert abs(occurred["sess-user"] - hour_ago) < timedelta(milliseconds=1)
