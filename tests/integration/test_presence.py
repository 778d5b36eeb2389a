"""Presence over the embedded Redis: counts summed over gateways, expiry, frames, Redis away,
and ``GET /v1/presence`` on the whole gateway app."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config import Settings
from gateway.keys import TOKENS
from gateway.push.keys import PRESENCE
from mercato._procs import free_port
from stores.presence import ALL, PresenceCounts
from stores.redisdb import redis_client
from tests.support.files import eventually
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration
P1, P2 = "product:p1", "product:p2"


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the embedded Redis; the test's keys are under its own app id."""
    client = redis_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


def counts(redis: Redis, settings: Settings, gateway: str, ttl: float = 30) -> PresenceCounts:
    return PresenceCounts(redis, settings.app_id, gateway, ttl=ttl)


async def test_counts_are_summed_over_live_gateways(redis: Redis, settings: Settings) -> None:
    a, b = counts(redis, settings, "a"), counts(redis, settings, "b")
    await a.publish({P1: 2, ALL: 2}, replace=True)
    await b.publish({P1: 1, P2: 3, ALL: 4}, replace=True)
    assert await a.totals([P1, P2, ALL, "product:none"]) == [3, 3, 6, 0]
    await b.publish({P1: 0})  # nobody on b views P1 any more
    assert await b.total(P1) == 2
    await a.leave()
    assert await b.totals([P1, P2]) == [0, 3]


async def test_a_gateway_that_stops_beating_drops_out(redis: Redis, settings: Settings) -> None:
    dying, alive = counts(redis, settings, "dying", ttl=0.5), counts(redis, settings, "alive")
    await dying.publish({P1: 5}, replace=True)
    await alive.publish({P1: 1}, replace=True)
    assert await alive.total(P1) == 6
    await asyncio.sleep(0.8)
    assert await alive.total(P1) == 1


async def test_publish_says_when_the_counts_were_lost(redis: Redis, settings: Settings) -> None:
    store = counts(redis, settings, "g")
    assert not await store.publish({P1: 1}, replace=True)  # nothing was there yet
    assert await store.publish({P2: 1})
    await redis.delete(f"{settings.app_id}:presence:gw:g")  # as a Redis restart would
    assert not await store.publish({P2: 2})



Client = TestClient[web.Request, web.Application]
TICKS = 5.0  # seconds a presence frame may take: two 1 s ticks, and a loaded box


def bearer(client: Client, user: str, role: str = "buyer") -> dict[str, str]:
    assert client.app is not None
    return {"Authorization": f"Bearer {client.app[TOKENS].issue_access(user, [role])}"}


class Viewer:
    """A WebSocket client of one gateway app, with every frame it was sent."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def until(self, test: Callable[[dict[str, Any]], bool], within: float = TICKS,
                    ) -> dict[str, Any]:
        """The first frame from now on that passes ``test``."""
        async with asyncio.timeout(within):
            while True:
                frame: dict[str, Any] = await self.ws.receive_json()
                self.frames.append(frame)
                if test(frame):
                    return frame

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """The frames sent within the next ``seconds``."""
        got: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    got.append(await self.ws.receive_json())
        return got


def told(count: int, channel: str = P1) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f == {"type": "presence", "channel": channel, "count": count}


def subscribed(channel: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f == {"type": "subscribed", "channel": channel}


@contextlib.asynccontextmanager
async def viewing(client: Client, user: str, *channels: str) -> AsyncIterator[Viewer]:
    async with client.ws_connect("/v1/ws", headers=bearer(client, user)) as ws:
        viewer = Viewer(ws)
        for channel in channels:
            await ws.send_json({"type": "subscribe", "channel": channel})
            await viewer.until(subscribed(channel))
        yield viewer


async def test_two_gateways_push_the_same_count(topics: Settings) -> None:
    async with gateway_client(topics) as a, gateway_client(topics) as b:
        async with viewing(a, "alice", P1) as alice, viewing(b, "bob", P1, "user:bob") as bob:
            await alice.until(told(2))
            await bob.until(told(2))
            # The same user again on one gateway is no new viewer; the newcomer is told.
            async with viewing(a, "alice", P1) as alice_tab:
                await alice_tab.until(told(2))
                assert not [f for f in await alice.quiet(2.5) if f["type"] == "presence"]
            # Bob drops and comes back within a tick: at most one frame, and still two.
            await bob.ws.close()
            async with viewing(b, "bob", P1) as bob_again:
                await bob_again.until(told(2))
                shown = [f["count"] for f in await alice.quiet(2.5) if f["type"] == "presence"]
                assert shown in ([], [1, 2], [2]), shown
            await alice.until(told(1))

        async def gone() -> bool:
            answer = await a.get("/v1/presence", params={"channel": P1})
            return bool((await answer.json())["count"] == 0)

        await eventually(gone, "everyone to have left", TICKS)


async def test_counts_lost_in_redis_are_written_again(
    topics: Settings, redis: Redis,
) -> None:
    async with gateway_client(topics) as client, viewing(client, "alice", P1) as alice:
        await alice.until(told(1))
        # As a Redis restart would: every gateway's hash gone.
        for key in await redis.keys(f"{topics.app_id}:presence:gw:*"):
            await redis.delete(key)

        async def back() -> bool:
            answer = await client.get("/v1/presence", params={"channel": P1})
            return bool((await answer.json())["count"] == 1)

        await eventually(back, "the gateway to write its counts again", TICKS)


async def test_redis_away_means_no_frames_and_push_goes_on(topics: Settings) -> None:
    away = redis_client(
        dataclasses.replace(topics, redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        socket_timeout=0.5,
    )
    try:
        async with gateway_client(topics) as client:
            assert client.app is not None
            client.app[PRESENCE].store = counts(away, topics, "g")
            async with viewing(client, "alice", P1, P2) as alice:
                assert not [f for f in await alice.quiet(2.5) if f["type"] == "presence"]
                await alice.ws.send_json({"type": "ping"})
                await alice.until(lambda f: f == {"type": "pong"})
                refused = await client.get("/v1/presence", params={"channel": P1})
                assert refused.status == 503
                assert (await refused.json())["code"] == "SERVICE_UNAVAILABLE"
                # The dashboard, read from MongoDB, leaves the live viewers out.
                admin = bearer(client, "A1", "admin")
                dashboard = await client.get("/v1/analytics/dashboard", headers=admin)
                assert dashboard.status == 200
                assert "viewersNow" not in await dashboard.json()
    finally:
        await away.aclose()


async def test_get_presence(topics: Settings) -> None:
    async with gateway_client(topics) as client:
        answer = await client.get("/v1/presence", params={"channel": "product:nobody-here"})
        assert answer.status == 200, await answer.text()
        assert await answer.json() == {"channel": "product:nobody-here", "count": 0}
        assert answer.headers["Cache-Control"] == "private, no-store"
        for bad in ("user:u1", "dashboard", "product:", "product:a.b", ""):
            refused = await client.get("/v1/presence", params={"channel": bad})
            assert refused.status == 422, bad
            assert (await refused.json())["code"] == "INVALID_CHANNEL"
        missing = await client.get("/v1/presence")
        assert missing.status == 422


async def test_a_viewer_is_counted_by_presence_and_the_marketplace_dashboard(
    topics: Settings,
) -> None:
    async with gateway_client(topics) as client, viewing(client, "U1", P1) as viewer:
        await viewer.until(told(1))
        answer = await client.get("/v1/presence", params={"channel": P1})
        assert await answer.json() == {"channel": P1, "count": 1}
        admin = bearer(client, "A1", "admin")
        dashboard = await client.get("/v1/analytics/dashboard", headers=admin)
        assert dashboard.status == 200, await dashboard.text()
        assert (await dashboard.json())["viewersNow"] == 1
        # A seller's dashboard has no live viewers: counts are per product, not per shop.
        own = await client.get("/v1/analytics/dashboard", headers=admin,
                               params={"sellerId": "S1"})
        assert "viewersNow" not in await own.json()


async def test_sse_streams_are_told_too(topics: Settings) -> None:
    async with gateway_client(topics) as client:
        stream = await client.get("/v1/events", params={"channels": P1},
                                  headers=bearer(client, "alice"))
        assert stream.status == 200
        try:
            async with asyncio.timeout(TICKS):
                while (line := await stream.content.readline()) != b"event: presence\n":
                    assert line, "the stream ended"
                data = await stream.content.readline()
            assert data == b'data: {"type":"presence","channel":"product:p1","count":1}\n'
        finally:
            stream.close()
