"""POST /v1/analytics/events through a real gateway, Redis and broker: what a batch costs."""

from __future__ import annotations

import dataclasses

import pytest

from config import Settings
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration


def batch(size: int) -> dict[str, object]:
    return {"events": [{"type": "checkout.started", "sessionId": "sess-rl"}] * size}


async def test_a_batch_costs_one_token_per_event(topics: Settings) -> None:
    settings = dataclasses.replace(topics, rate_limit_enabled=True,
                                   rate_limits="events=1/3600:10")
    async with gateway_client(settings) as client:
        first = await client.post("/v1/analytics/events", json=batch(4))
        assert first.status == 202, await first.text()
        refused = await client.post("/v1/analytics/events", json=batch(7))  # 6 tokens left
        assert refused.status == 429
        assert (await refused.json())["code"] == "RATE_LIMITED"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await client.post("/v1/analytics/events", json=batch(1))).status == 429
