"""Notifications end to end: each event tells the right user once, live, with the unread count.

A real worker process, the gateway in process, Kafka and MongoDB. A buyer's completed
order, a shared file, a review, a low stock and a refund each make exactly one
notification for the right user, pushed on ``user:{id}`` with the new unread count,
which ``GET /v1/notifications/unread-count`` agrees with, also after every cause is
delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import eventually, upload
from tests.support.http import worker_and_gateway
from tests.support.orders import (
    Client,
    account,
    place,
    produce,
    product,
    read_all,
    settled,
    stock_is,
    worker_caught_up,
)

pytestmark = pytest.mark.e2e
# Where every cause of a notification travels (and the outbox itself), to deliver again.
CAUSES = ("order-saga", "inventory", "files", "product-commands", "outbox")


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An isolated world; a busy box stalls the worker, so a long session."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("notifications")),
        worker_session_timeout=20.0,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A real worker process and the gateway in process."""
    async with worker_and_gateway(env) as c:
        yield c


class Follower:
    """Everything pushed on one user's channel, collected from a live WebSocket."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def collect(self) -> None:
        async for message in self.ws:
            frame = message.json()
            if frame["type"] == "event":
                self.events.append(frame["event"])

    def created(self) -> set[str]:
        return {e["data"]["notificationId"] for e in self.events
                if e["type"] == "notification.created"}

    def counts(self) -> list[int]:
        """The unread counts pushed, once per event id (a redelivery repeats an id)."""
        seen: dict[str, int] = {}
        for e in self.events:
            if e["type"] == "notification.unread_changed":
                seen.setdefault(e["id"], e["data"]["unread"])
        return list(seen.values())


@contextlib.asynccontextmanager
async def following(
    client: Client, user_id: str, headers: dict[str, str]
) -> AsyncIterator[Follower]:
    ws = await client.ws_connect("/v1/ws", headers=headers)
    await ws.send_json({"type": "subscribe", "channel": f"user:{user_id}"})
    assert (await ws.receive_json(timeout=10))["type"] == "subscribed"
    follower = Follower(ws)
    task = asyncio.create_task(follower.collect())
    try:
        yield follower
    finally:
        await ws.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def notes(client: Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    body = await (await client.get("/v1/notifications?limit=50", headers=headers)).json()
    data: list[dict[str, Any]] = body["data"]
    return data


async def unread(client: Client, headers: dict[str, str]) -> int:
    response = await client.get("/v1/notifications/unread-count", headers=headers)
    assert response.status == 200, await response.text()
    count: int = (await response.json())["unread"]
    return count


async def told(client: Client, headers: dict[str, str], follower: Follower,
               types: list[str]) -> list[dict[str, Any]]:
    """The user's notifications once they are ``types`` and their count was pushed."""
    async def probe() -> list[dict[str, Any]] | None:
        mine = await notes(client, headers)
        if sorted(n["type"] for n in mine) != sorted(types):
            return None
        pushed = follower.counts()
        return mine if pushed and pushed[-1] == len(types) else None

    return await eventually(probe, within=60, what=f"notifications {types}")


async def test_each_event_notifies_the_right_user_once_live_with_the_unread_count(
    client: Client, env: Settings,
) -> None:
    seller_id, seller = await account(client, "seller", patience=90)
    buyer_id, buyer = await account(client)
    # The seller's own threshold: the default (5) would not see 10 -> 6.
    patched = await client.patch("/v1/users/me", headers=seller, json={"stockLowThreshold": 8})
    assert patched.status == 200, await patched.text()
    assert (await patched.json())["stockLowThreshold"] == 8

    async with following(client, buyer_id, buyer) as buyer_feed, \
            following(client, seller_id, seller) as seller_feed:
        book = await upload(client, seller, b"%PDF-1.4 the book", name="book.pdf")
        product_id = await product(client, seller, stock=10,
                                   file_ids=[(await book.json())["fileId"]])
        order_id = await place(client, buyer, [(product_id, 4)])
        await settled(client, buyer, order_id, until={"completed"})
        await stock_is(client, product_id, 6)

        extra = await upload(client, seller, b"%PDF-1.4 notes", name="notes.pdf")
        shared = await client.post(f"/v1/files/{(await extra.json())['fileId']}/permissions",
                                   headers=seller, json={"userId": buyer_id, "access": "read"})
        assert shared.status == 201, await shared.text()
        review = await client.post(f"/v1/products/{product_id}/reviews", headers=buyer,
                                   json={"rating": 4, "comment": "good"})
        assert review.status == 201, await review.text()
        cancelled = await client.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
        assert cancelled.status == 202, await cancelled.text()
        await settled(client, buyer, order_id, until={"refunded"})
        await stock_is(client, product_id, 10)

        # The purchase grant of the book is told by order_completed, not file_shared.
        buyer_notes = await told(client, buyer, buyer_feed,
                                 ["order_completed", "file_shared", "order_refunded"])
        seller_notes = await told(client, seller, seller_feed,
                                  ["order_received", "stock_low", "review_received"])
        assert [n["body"] for n in seller_notes if n["type"] == "stock_low"] == [
            f"\u201c{await _name(client, product_id)}\u201d has 6 left (your alert threshold "
            "is 8)."]
        for headers, feed, listed in ((buyer, buyer_feed, buyer_notes),
                                      (seller, seller_feed, seller_notes)):
            assert await unread(client, headers) == 3
            assert feed.created() == {n["notificationId"] for n in listed}
            assert feed.counts() == [1, 2, 3]

        # Every cause delivered again, as after a crash before the commits: nothing new.
        await produce(env, await read_all(env, CAUSES))
        await worker_caught_up(env, CAUSES)
        await worker_caught_up(env, ["outbox"])  # what the repeated causes asked for again
        for headers, feed, listed in ((buyer, buyer_feed, buyer_notes),
                                      (seller, seller_feed, seller_notes)):
            assert await notes(client, headers) == listed
            assert await unread(client, headers) == 3
            assert feed.created() == {n["notificationId"] for n in listed}
            assert feed.counts() == [1, 2, 3]

        first = buyer_notes[0]["notificationId"]
        read = await client.post(f"/v1/notifications/{first}/read", headers=buyer)
        assert read.status == 204
        assert await unread(client, buyer) == 2
        await eventually(lambda: _last_is(buyer_feed, 2), within=30, what="the count 2 pushed")
        gone = await client.delete(f"/v1/notifications/{first}", headers=buyer)
        assert gone.status == 204  # a read one: the count stays
        other = buyer_notes[1]["notificationId"]
        assert (await client.delete(f"/v1/notifications/{other}", headers=buyer)).status == 204
        assert await unread(client, buyer) == 1
        await eventually(lambda: _last_is(buyer_feed, 1), within=30, what="the count 1 pushed")
        assert buyer_feed.counts() == [1, 2, 3, 2, 1]


async def _name(client: Client, product_id: str) -> str:
    name: str = (await (await client.get(f"/v1/products/{product_id}")).json())["name"]
    return name


async def _last_is(feed: Follower, count: int) -> bool:
    return feed.counts()[-1] == count


async def test_unread_count_needs_a_signed_in_caller(client: Client) -> None:
    response = await client.get("/v1/notifications/unread-count")
    assert response.status == 401
    assert (await response.json())["code"] == "UNAUTHENTICATED"


async def test_read_all_reads_every_notification_once_and_pushes_the_count(
    client: Client,
) -> None:
    assert (await client.post("/v1/notifications/read-all")).status == 401
    _, owner = await account(client, "seller", patience=90)
    reader_id, reader = await account(client)

    async def share(name: str) -> None:
        uploaded = await upload(client, owner, b"%PDF-1.4 " + name.encode(), name=name)
        shared = await client.post(f"/v1/files/{(await uploaded.json())['fileId']}/permissions",
                                   headers=owner, json={"userId": reader_id, "access": "read"})
        assert shared.status == 201, await shared.text()

    async with following(client, reader_id, reader) as feed:
        for name in ("a.pdf", "b.pdf"):
            await share(name)
        await told(client, reader, feed, ["file_shared", "file_shared"])
        done = await client.post("/v1/notifications/read-all", headers=reader)
        assert done.status == 204, await done.text()
        assert await unread(client, reader) == 0
        assert {n["read"] for n in await notes(client, reader)} == {True}
        await eventually(lambda: _last_is(feed, 0), within=30, what="the count 0 pushed")
        # Nothing left unread: accepted, and no count pushed since none moved.
        assert (await client.post("/v1/notifications/read-all", headers=reader)).status == 204
        await share("c.pdf")
        await eventually(lambda: _last_is(feed, 1), within=60, what="the count 1 pushed")
        assert feed.counts() == [1, 2, 0, 1]
        assert await unread(client, reader) == 1


async def test_a_sellers_threshold_is_checked_shown_and_cleared(client: Client) -> None:
    _, seller = await account(client, "seller", patience=90)
    for bad in (-1, True, "5", 1_000_001):
        refused = await client.patch("/v1/users/me", headers=seller,
                                     json={"stockLowThreshold": bad})
        assert refused.status == 422, (bad, await refused.text())
        assert (await refused.json())["errors"][0]["field"] == "stockLowThreshold"
    assert (await client.patch("/v1/users/me", headers=seller,
                               json={"stockLowThreshold": 0})).status == 200
    shown = await (await client.get("/v1/users/me", headers=seller)).json()
    assert shown["stockLowThreshold"] == 0  # alerts off
    cleared = await client.patch("/v1/users/me", headers=seller, json={"stockLowThreshold": None})
    assert cleared.status == 200
    assert "stockLowThreshold" not in await cleared.json()  # back to the default
