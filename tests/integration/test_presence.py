"""Presence over the embedded Redis: counts summed over gateways, expiry, frames, Redis away,
and ``GET /v1/presence`` on the whole gateway app."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from config import Settings
from gateway.identity.auth import Principal, scopes_for
from gateway.push.connection import Connection
from gateway.push.events import Control, PushEvent
from gateway.push.hub import PushHub
from gateway.push.presence import Presence
from mercato._procs import free_port
from stores.presence import ALL, PresenceCounts
from stores.redisdb import redis_client
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


def viewer(user: str) -> Principal:
    return Principal(user, frozenset({"buyer"}), scopes_for(["buyer"]), f"jti-{user}")


def gateway(settings: Settings, redis: Redis, name: str) -> tuple[PushHub, Presence]:
    """A hub (not consuming: only its subscriptions matter here) and its presence."""
    hub = PushHub(settings)
    presence = Presence(hub, counts(redis, settings, name))
    hub.subscription_listeners.append(presence)
    return hub, presence


def follow(hub: PushHub, user: str, *channels: str) -> Connection:
    conn = hub.open(viewer(user))
    hub.subscribe(conn, channels)
    return conn


async def frames(conn: Connection) -> list[dict[str, object]]:
    """The frames queued for ``conn`` now."""
    found: list[dict[str, object]] = []
    while True:
        try:
            out = await asyncio.wait_for(conn.next(), 0.05)
        except TimeoutError:
            return found
        assert isinstance(out, Control)
        found.append(out.frame)


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


async def test_two_gateways_push_the_same_count(redis: Redis, settings: Settings) -> None:
    hub_a, presence_a = gateway(settings, redis, "a")
    hub_b, presence_b = gateway(settings, redis, "b")
    alice = follow(hub_a, "alice", P1)
    alice_tab = follow(hub_a, "alice", P1)  # the same user twice on one gateway: one viewer
    bob = follow(hub_b, "bob", P1, "user:bob")
    await presence_a.tick()
    await presence_b.tick()
    await presence_a.tick()
    expected = {"type": "presence", "channel": P1, "count": 2}
    assert (await frames(alice))[-1] == expected
    assert (await frames(alice_tab))[-1] == expected
    assert await frames(bob) == [expected]  # only product channels are counted

    # Bob leaves and comes back between two ticks: nothing changed, nothing is pushed.
    hub_b.close(bob)
    bob = follow(hub_b, "bob", P1)
    await presence_b.tick()
    await presence_a.tick()
    assert await frames(alice) == []
    assert await frames(bob) == [expected]  # a new subscriber learns the count at once

    hub_a.close(alice_tab)
    hub_a.close(alice)
    await presence_a.tick()
    await presence_b.tick()
    assert await frames(bob) == [{"type": "presence", "channel": P1, "count": 1}]


async def test_counts_lost_in_redis_are_written_again(redis: Redis, settings: Settings) -> None:
    hub, presence = gateway(settings, redis, "g")
    follow(hub, "alice", P1)
    await presence.tick()
    await redis.delete(f"{settings.app_id}:presence:gw:g")
    await presence.tick()  # finds the hash gone and writes every count again
    assert await presence.store.total(P1) == 1


async def test_redis_away_means_no_frames_and_push_goes_on(settings: Settings) -> None:
    away = redis_client(
        dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        socket_timeout=0.5,
    )
    try:
        hub = PushHub(settings)
        presence = Presence(hub, counts(away, settings, "g"))
        hub.subscription_listeners.append(presence)
        conn = follow(hub, "alice", P1)
        await presence.tick()  # logs a warning, raises nothing
        assert await frames(conn) == []
        assert not conn.ended
        envelope = {
            "id": "e1", "type": "product.updated", "version": 1, "key": "p1",
            "occurredAt": "2025-01-01T00:00:00.000Z", "source": "test",
            "correlationId": "e1", "causationId": None, "data": {},
        }
        hub.dispatch(P1, 0, 7, envelope)
        out = await asyncio.wait_for(conn.next(), 1)
        assert isinstance(out, PushEvent)
        assert out.offset == 7
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
