"""Analytics end to end: orders and client events in, dashboard, pushes and reports out."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.analytics import admin, expected, listed, matches
from tests.support.files import eventually
from tests.support.http import worker_and_gateway
from tests.support.orders import (
    Client,
    account,
    place,
    produce,
    read_all,
    settled,
    worker_caught_up,
)

# Windows close on minute boundaries: a test may wait for two of them on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]
# A window closes once its minute is over: reports wait for that (up to a minute and more).
CLOSE = 150.0
# Wide, so that "within the grace" holds however slow the machine is; late means older.
GRACE = 300.0


def analytics_settings(stack: Endpoints, data_dir: Any) -> Settings:
    """Short ticks; the grace is wide enough for a busy machine's delays."""
    return dataclasses.replace(
        make_settings(stack, data_dir), rate_limit_enabled=False, analytics_grace=GRACE,
        analytics_tick=0.5, worker_session_timeout=20.0, payment_call_timeout=0.5,
        saga_reserve_timeout=20.0, saga_charge_timeout=20.0,
    )


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = analytics_settings(stack, tmp_path_factory.mktemp("analytics"))
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    async with worker_and_gateway(env) as c:
        yield c


async def subscribe(client: Client, headers: dict[str, str], channel: str
                    ) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/v1/ws", headers=headers)
    await ws.send_json({"type": "subscribe", "channel": channel})
    return ws


async def refused(client: Client, headers: dict[str, str], channel: str) -> str:
    ws = await subscribe(client, headers, channel)
    try:
        frame = await asyncio.wait_for(ws.receive_json(), 10)
    finally:
        await ws.close()
    assert frame["type"] == "error", frame
    return str(frame["code"])


class Pushed:
    """Every analytics.snapshot received on one WebSocket, kept as it arrives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.snapshots: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            frame = message.json()
            if frame.get("type") == "event" and frame["event"]["type"] == "analytics.snapshot":
                self.snapshots.append(frame["event"]["data"])

    async def aclose(self) -> None:
        await self.ws.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# The late events first. Both tests wait for a minute to end (a window closes only then):
# this one's setup is short, and the dashboard's longer one (accounts, products, orders)
# then runs in the next minute, whose end it waits for anyway.
async def test_late_events_revise_within_the_grace_and_are_counted_beyond_it(
    client: Client, env: Settings,
) -> None:
    seller_id, seller = await account(client, "seller", patience=90)
    product_id = await listed(client, seller, price="2.00", currency="USD")
    scope = f"seller:{seller_id}"
    # Backdated by a signed-in buyer: an anonymous caller's at is clamped to the last seconds.
    _, buyer = await account(client)

    async def view(session: str, at: datetime | None = None) -> None:
        event: dict[str, Any] = {"type": "product.viewed", "sessionId": session,
                                 "properties": {"productId": product_id}}
        if at is not None:
            event["at"] = at.isoformat()
        response = await client.post("/v1/analytics/events", json={"events": [event]},
                                     headers=buyer)
        assert response.status == 202, await response.text()

    async def published(metric: str) -> dict[tuple[str, int], Any]:
        records = await read_all(env, ["analytics-windows"])
        out: dict[tuple[str, int], Any] = {}
        for _, key, value in records:
            data = orjson.loads(value)["data"]
            if key.decode().startswith(f"{scope}|{metric}|minute|"):
                out[(data["start"], data["revision"])] = data["value"]
        return out

    async def report(by: str) -> list[dict[str, Any]]:
        response = await client.get(f"/v1/analytics/reports?groupBy={by}", headers=seller)
        assert response.status == 200, await response.text()
        rows: list[dict[str, Any]] = (await response.json())["data"]
        return rows

    async def product_views() -> int:
        rows = await report("product")
        return int(rows[0]["productViews"]) if rows else 0

    async def late_counted() -> bool:
        rows = await report("day")
        return sum(int(row["lateEvents"]) for row in rows) == 1

    first = datetime.now(UTC)
    await view("late-a", first)
    # Beyond the grace of its source's newest event (the first view, same buyer): counted
    # as late where the clock is now (the first view's minute, or the next), never applied.
    # Sent at once, so that one minute's closing shows both.
    await view("late-c", first - timedelta(seconds=GRACE + 120))
    minute = first.replace(second=0, microsecond=0)
    start = minute.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    async def closed(revision: int, value: int) -> bool:
        return (await published("productViews")).get((start, revision)) == value

    await eventually(lambda: closed(1, 1), within=CLOSE, what="the first view's window to close")
    await eventually(late_counted, within=CLOSE, what="the late event to be counted")
    assert await product_views() == 1
    # Within the grace (5 minutes) though its minute closed: the window is revised.
    await view("late-b", minute + timedelta(seconds=1))
    await eventually(lambda: closed(2, 2), within=60, what="the window's second revision")
    assert await product_views() == 2
    assert await late_counted()

    async def dashboard_views() -> int:
        dashboard = await client.get("/v1/analytics/dashboard", headers=seller)
        return int((await dashboard.json())["today"]["productViews"])

    # The snapshot follows the revision within a snapshot interval.
    await eventually(dashboard_views, ok=lambda views: views == 2, within=30,
                     what="the dashboard to count both views")

    # Redelivered (a crash before the offset commit): the client events and their facts.
    again = [r for r in await read_all(env, ["analytics", "analytics-facts"])
             if b"late-" in r[2] or scope.encode() == r[1]]
    assert again
    await produce(env, again)
    await worker_caught_up(env, ["analytics", "analytics-facts"])
    assert await product_views() == 2
    assert sum(row["lateEvents"] for row in await report("day")) == 1
    assert (await published("productViews")).get((start, 3)) is None
    assert await dashboard_views() == 2


async def test_dashboard_pushes_and_reports_agree_with_the_orders_placed(
    client: Client, env: Settings,
) -> None:
    operator = await admin(client, env)
    s1_id, s1 = await account(client, "seller", patience=90)
    s2_id, s2 = await account(client, "seller")
    _, buyer = await account(client)
    assert await refused(client, buyer, "dashboard") == "FORBIDDEN"
    assert await refused(client, buyer, f"dashboard:{s1_id}") == "FORBIDDEN"
    assert await refused(client, s2, f"dashboard:{s1_id}") == "FORBIDDEN"
    market_push = Pushed(await subscribe(client, operator, "dashboard"))
    s1_push = Pushed(await subscribe(client, s1, f"dashboard:{s1_id}"))

    # Concurrently: the numbers are the sums whatever order the sagas run in, and the
    # report's wait (the last order's minute closing) starts sooner.
    usd1, usd2, eur1, eur2 = await asyncio.gather(
        listed(client, s1, price="10.00", currency="USD"),
        listed(client, s2, price="4.25", currency="USD"),
        listed(client, s1, price="7.50", currency="EUR"),
        listed(client, s2, price="3.10", currency="EUR"))
    baskets = [[(usd1, 2)], [(usd1, 1), (usd2, 3)], [(eur1, 1)], [(eur1, 2), (eur2, 1)],
               [(usd2, 1)], [(eur2, 4)], [(usd1, 1), (usd2, 1)]]
    ids = await asyncio.gather(*(place(client, buyer, basket) for basket in baskets))
    await asyncio.gather(*(settled(client, buyer, o, until={"completed"}) for o in ids))

    async def refunded(order_id: str) -> None:
        cancel = await client.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
        assert cancel.status == 202, await cancel.text()
        await settled(client, buyer, order_id, until={"refunded"})

    await asyncio.gather(refunded(ids[1]), refunded(ids[3]))  # one refund in each currency
    orders = [await (await client.get(f"/v1/orders/{o}", headers=buyer)).json() for o in ids]
    want = expected(orders)
    assert set(want) == {None, s1_id, s2_id}

    views = {"events": [
        {"type": "product.viewed", "sessionId": "sess-a", "properties": {"productId": usd1}},
        {"type": "product.viewed", "sessionId": "sess-b", "properties": {"productId": usd1}},
        {"type": "page.viewed", "sessionId": "sess-c", "properties": {"path": "/"}},
    ]}
    accepted = await client.post("/v1/analytics/events", json=views)
    assert accepted.status == 202, await accepted.text()
    assert await accepted.json() == {"accepted": 3}

    async def dashboard(headers: dict[str, str], query: str = "") -> dict[str, Any]:
        response = await client.get(f"/v1/analytics/dashboard{query}", headers=headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    for headers, query, seller in ((operator, "", None), (operator, f"?sellerId={s1_id}", s1_id),
                                   (s2, "", s2_id)):
        async def current(h: dict[str, str] = headers, q: str = query,
                          s: str | None = seller) -> dict[str, Any] | None:
            body = await dashboard(h, q)
            return body if matches(body["today"], want[s]) else None

        body = await eventually(current, within=60, what=f"the dashboard of {seller}")
        assert body["scope"] == {"sellerId": seller}

    async def viewed() -> dict[str, Any] | None:
        body = await dashboard(s1)
        return body if body["today"]["productViews"] == 2 else None

    s1_now = await eventually(viewed, within=30, what="seller 1's two product views")
    # Conversion: the seller's orders over the distinct sessions that viewed their products.
    assert s1_now["today"]["conversionRate"] == round(want[s1_id].orders / 2, 4)
    assert s1_now["topProducts"][0]["productId"] == usd1
    assert s1_now["visitorsNow"] >= 2
    other = await client.get(f"/v1/analytics/dashboard?sellerId={s2_id}", headers=s1)
    assert other.status == 403
    assert (await client.get("/v1/analytics/dashboard", headers=buyer)).status == 403

    for pushed, seller in ((market_push, None), (s1_push, s1_id)):
        async def received(p: Pushed = pushed, s: str | None = seller) -> bool:
            return bool(p.snapshots) and matches(p.snapshots[-1]["today"], want[s])

        await eventually(received, within=30, what=f"a pushed snapshot of {seller}")
    await market_push.aclose()
    await s1_push.aclose()

    async def report(headers: dict[str, str], by: str) -> list[dict[str, Any]]:
        response = await client.get(f"/v1/analytics/reports?groupBy={by}", headers=headers)
        assert response.status == 200, await response.text()
        rows: list[dict[str, Any]] = (await response.json())["data"]
        return rows

    async def day_closed() -> bool:
        rows = await report(operator, "day")
        return len(rows) == 1 and matches(rows[0], want[None])

    await eventually(day_closed, within=CLOSE, what="the day's report to count every order")
    by_seller = {row["sellerId"]: row for row in await report(operator, "seller")}
    assert matches(by_seller[s1_id], want[s1_id])
    assert matches(by_seller[s2_id], want[s2_id])
    assert [row["sellerId"] for row in await report(s1, "seller")] == [s1_id]
    assert matches((await report(s1, "day"))[0], want[s1_id])
    products = {row["productId"]: row for row in await report(s1, "product")}
    assert set(products) == {usd1, eur1}
    csv = await client.get("/v1/analytics/reports?groupBy=day",
                           headers={**operator, "Accept": "text/csv"})
    assert csv.status == 200
    assert csv.content_type == "text/csv"
    header = (await csv.text()).splitlines()[0].split(",")
    assert {"day", "orders", "revenue_USD", "revenue_EUR", "refunds_EUR"} <= set(header)


async def test_client_events_are_validated(client: Client) -> None:
    async def post(body: object, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        return await client.post("/v1/analytics/events", json=body, headers=headers or {})

    unknown = await post({"events": [{"type": "cart.exploded", "sessionId": "s"}]})
    assert unknown.status == 422
    assert (await unknown.json())["errors"][0]["field"].startswith("events.0.type")
    anonymous = await post({"events": [{"type": "page.viewed", "properties": {"path": "/"}}]})
    assert anonymous.status == 422
    assert (await anonymous.json())["errors"][0]["field"] == "events.0.sessionId"
    missing = await post({"events": [{"type": "product.viewed", "sessionId": "s"}]})
    assert [e["field"] for e in (await missing.json())["errors"]] == [
        "events.0.properties.productId"]
    many = {"events": [{"type": "page.viewed", "sessionId": "s", "properties": {"path": "/"}}]
            * 101}
    assert (await post(many)).status == 422
    assert (await post({"events": []})).status == 422
    _, buyer = await account(client)
    signed_in = await post(
        {"events": [{"type": "search.performed", "properties": {"query": "lamp"}}]}, buyer)
    assert signed_in.status == 202
    bad_token = await post({"events": []}, {"Authorization": "Bearer nope"})
    assert bad_token.status == 401
    bad_time = await post({"events": [{"type": "checkout.started", "sessionId": "s",
                                       "at": "yesterday"}]})
    assert [e["field"] for e in (await bad_time.json())["errors"]] == ["events.0.at"]
