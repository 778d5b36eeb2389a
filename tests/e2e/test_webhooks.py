"""Webhooks end to end: a seller's endpoint on a loopback server receives their orders' events.

A real worker and the gateway in process; the endpoints are an aiohttp server this module
runs on 127.0.0.1 (allowed in dev, refused in prod).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agents.webhooks import signing
from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import eventually
from tests.support.http import gateway_client, worker_and_gateway
from tests.support.orders import Client, account, place, product, settled

pytestmark = pytest.mark.e2e
Json = dict[str, Any]


@dataclasses.dataclass
class Receiver:
    """What the loopback endpoints received, by path, and how often /flaky must fail first."""

    server: TestServer
    received: dict[str, list[tuple[dict[str, str], bytes]]] = dataclasses.field(
        default_factory=dict
    )
    flaky_failures: int = 3

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def bodies(self, path: str) -> list[Json]:
        return [orjson.loads(body) for _, body in self.received.get(path, [])]


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Retries within a fraction of a second, so four attempts take well under a minute."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("webhooks")),
        rate_limit_enabled=False, worker_session_timeout=20.0,
        saga_reserve_timeout=20.0, saga_charge_timeout=20.0,
        webhook_retry_schedule="0.3,0.3,0.3,0.3,0.3", webhook_tick=0.1, webhook_timeout=5.0,
        webhook_disable_after=5,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    """The endpoints: /flaky answers 500 three times, then 200; /dead always 500; others 200."""
    app = web.Application()
    holder: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        state = holder[0]
        state.received.setdefault(request.path, []).append((dict(request.headers), body))
        if request.path == "/dead":
            return web.Response(status=500)
        if request.path == "/flaky" and state.flaky_failures > 0:
            state.flaky_failures -= 1
            return web.Response(status=500)
        return web.Response(status=200)

    app.router.add_post("/{name}", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Receiver(server))
    try:
        yield holder[0]
    finally:
        await server.close()


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A real worker process and the gateway in process."""
    async with worker_and_gateway(env) as c:
        yield c


async def register(client: Client, seller: dict[str, str], url: str, events: list[str]) -> Json:
    created = await client.post("/v1/webhooks", headers=seller, json={"url": url,
                                                                      "events": events})
    assert created.status == 201, await created.text()
    endpoint: Json = await created.json()
    assert endpoint["secret"].startswith("whsec_")
    return endpoint


async def seen(condition: Callable[[], bool]) -> bool | None:
    """``condition()`` as a probe for ``eventually`` (None until it holds)."""
    return condition() or None


def verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    """Check a delivery the way a receiver following Standard Webhooks does."""
    lowered = {k.lower(): v for k, v in headers.items()}
    expected = signing.signature(
        secret, lowered["webhook-id"], int(lowered["webhook-timestamp"]), body
    )
    assert expected in lowered["webhook-signature"].split(" ")
    assert orjson.loads(body)["id"] == lowered["webhook-id"]


async def test_a_sellers_order_is_delivered_signed_retried_and_kept_from_strangers(
    client: Client, receiver: Receiver,
) -> None:
    _, seller = await account(client, "seller", patience=90)
    _, stranger = await account(client, "seller")
    mine = await register(client, seller, receiver.url("/mine"), ["order.*", "payment.*"])
    flaky = await register(client, seller, receiver.url("/flaky"), ["order.placed"])
    theirs = await register(client, stranger, receiver.url("/theirs"), ["order.*", "payment.*"])
    product_id = await product(client, seller, stock=5)
    their_product = await product(client, stranger, stock=5)
    _, buyer = await account(client)
    order_id = await place(client, buyer, [(product_id, 1)])
    their_order = await place(client, buyer, [(their_product, 1)])
    assert (await settled(client, buyer, order_id))["status"] == "completed"
    assert (await settled(client, buyer, their_order))["status"] == "completed"

    def about(path: str, order: str) -> list[Json]:
        return [b for b in receiver.bodies(path) if b["data"].get("orderId") == order]

    def completed(path: str, order: str) -> bool:
        kinds = {(b["type"], b["data"].get("status")) for b in about(path, order)}
        return {("order.placed", None), ("payment.captured", None),
                ("order.status_changed", "completed")} <= kinds

    await eventually(lambda: seen(lambda: completed("/mine", order_id)),
                     within=60, what="the seller's order events at their endpoint")
    await eventually(lambda: seen(lambda: completed("/theirs", their_order)),
                     within=60, what="the stranger's order events at their endpoint")
    for headers, body in receiver.received["/mine"]:
        verify(mine["secret"], headers, body)
    for headers, body in receiver.received["/theirs"]:
        verify(theirs["secret"], headers, body)
    # Neither seller receives anything about the other's order.
    assert {b["data"]["orderId"] for b in receiver.bodies("/mine")} == {order_id}
    assert {b["data"]["orderId"] for b in receiver.bodies("/theirs")} == {their_order}
    assert all(b["type"].split(".")[0] in ("order", "payment") for b in receiver.bodies("/mine"))

    # 500, 500, 500, 200: one delivery, delivered at its fourth attempt, all four signed alike.
    async def flaky_delivered() -> Json | None:
        page = await client.get(f"/v1/webhooks/{flaky['webhookId']}/deliveries", headers=seller)
        assert page.status == 200, await page.text()
        data: list[Json] = (await page.json())["data"]
        return data[0] if data and data[0]["status"] == "delivered" else None

    delivery = await eventually(flaky_delivered, within=60, what="the flaky delivery")
    assert delivery["attempts"] == 4
    assert delivery["lastStatusCode"] == 200
    assert delivery["type"] == "order.placed"
    attempts = receiver.received["/flaky"]
    assert len(attempts) == 4
    assert len({h["webhook-id"] for h, _ in attempts}) == 1  # one event id to dedupe by
    for headers, body in attempts:
        verify(flaky["secret"], headers, body)
    page = await (await client.get(f"/v1/webhooks/{flaky['webhookId']}/deliveries",
                                   headers=seller)).json()
    assert len(page["data"]) == 1


async def test_a_test_ping_and_a_manual_retry_are_delivered_again(
    client: Client, receiver: Receiver,
) -> None:
    _, seller = await account(client, "seller", patience=90)
    endpoint = await register(client, seller, receiver.url("/ping"), ["review.*"])
    path = f"/v1/webhooks/{endpoint['webhookId']}"
    queued = await client.post(path + "/test", headers=seller)
    assert queued.status == 202, await queued.text()
    delivery_id = (await queued.json())["deliveryId"]

    async def pinged() -> list[Json] | None:
        bodies = receiver.bodies("/ping")
        return bodies or None

    (ping,) = await eventually(pinged, within=30, what="the test ping")
    assert ping["type"] == "webhook.ping"

    async def logged() -> Json | None:
        page = await (await client.get(path + "/deliveries", headers=seller)).json()
        rows = [d for d in page["data"] if d["deliveryId"] == delivery_id]
        return rows[0] if rows and rows[0]["status"] == "delivered" else None

    await eventually(logged, within=30, what="the ping in the delivery log")
    retried = await client.post(f"{path}/deliveries/{delivery_id}/retry", headers=seller)
    assert retried.status == 202, await retried.text()
    await eventually(lambda: seen(lambda: len(receiver.bodies("/ping")) == 2),
                     within=30, what="the retried ping")
    missing = await client.post(f"{path}/deliveries/{uuid.uuid4().hex}/retry", headers=seller)
    assert missing.status == 404


async def test_a_private_address_is_refused_in_prod(env: Settings, receiver: Receiver) -> None:
    prod = dataclasses.replace(env, env="prod")
    token = TokenService(prod).issue_access(uuid.uuid4().hex, ["seller"])
    async with gateway_client(prod) as gateway:
        for url in (receiver.url("/mine"), "http://localhost/hook", "http://[::1]/hook",
                    "http://169.254.169.254/latest/meta-data"):
            refused = await gateway.post(
                "/v1/webhooks", headers={"Authorization": f"Bearer {token}"},
                json={"url": url, "events": ["order.*"]},
            )
            assert refused.status == 422, await refused.text()
            assert (await refused.json())["code"] == "WEBHOOK_URL_REFUSED"


async def test_an_endpoint_failing_in_a_row_is_disabled_and_its_owner_notified(
    client: Client, receiver: Receiver,
) -> None:
    _, seller = await account(client, "seller", patience=90)
    endpoint = await register(client, seller, receiver.url("/dead"), ["review.*"])
    path = f"/v1/webhooks/{endpoint['webhookId']}"
    assert (await client.post(path + "/test", headers=seller)).status == 202

    async def disabled() -> Json | None:
        shown: Json = await (await client.get(path, headers=seller)).json()
        return None if shown["enabled"] else shown

    shown = await eventually(disabled, within=60, what="the dead endpoint disabled")
    assert shown["disabledReason"] == "5 failed attempts in a row"
    assert len(receiver.received["/dead"]) == 5

    async def told() -> list[Json] | None:
        page: Json = await (await client.get("/v1/notifications", headers=seller)).json()
        found = [n for n in page["data"] if n["type"] == "webhook_disabled"]
        return found or None

    (notification,) = await eventually(told, within=30, what="the owner's notification")
    assert receiver.url("/dead") in notification["body"]
    enabled = await client.patch(path, headers=seller, json={"enabled": True})
    assert (await enabled.json())["enabled"] is True
