"""Orders end to end: REST and WebSocket through the gateway, a real worker, Kafka and MongoDB."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import Envelope
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
SAGA_TOPICS = ("order-saga", "inventory-commands", "payment-commands", "files", "outbox")


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An isolated world with short provider timeouts, so failing payments fail fast."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("orders")),
        rate_limit_enabled=False, payment_call_timeout=0.3, payment_attempts=2,
        payment_backoff=0.05, saga_reserve_timeout=20.0, saga_charge_timeout=20.0,
        # Shared CI boxes stall the worker for seconds; a short session would rebalance.
        worker_session_timeout=20.0,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A real worker process and the gateway in process."""
    async with worker_and_gateway(env) as c:
        yield c


@pytest.fixture(scope="module")
async def seller(client: Client) -> tuple[str, dict[str, str]]:
    """One seller account for the module."""
    return await account(client, "seller", patience=90)


async def test_an_order_completes_delivers_the_file_and_allows_a_review(
    client: Client, seller: tuple[str, dict[str, str]], env: Settings,
) -> None:
    seller_id, seller_auth = seller
    uploaded = await upload(client, seller_auth, b"%PDF-1.4 the book", name="book.pdf")
    assert uploaded.status == 201, await uploaded.text()
    file_id = (await uploaded.json())["fileId"]
    product_id = await product(client, seller_auth, stock=5, file_ids=[file_id])
    buyer_id, buyer = await account(client)
    assert (await client.get(f"/v1/files/{file_id}/content", headers=buyer)).status in (403, 404)

    key = uuid.uuid4().hex
    order_id = await place(client, buyer, [(product_id, 1)], key=key)
    ws = await client.ws_connect("/v1/ws", headers=buyer)
    # Resume from the channel's start: transitions before the subscription are replayed.
    await ws.send_json({"type": "resume", "channel": f"order:{order_id}", "after": "0"})
    seen: list[str] = []
    while "completed" not in seen:
        frame = await asyncio.wait_for(ws.receive_json(), 30)
        if frame["type"] == "event" and frame["event"]["type"] == "order.status_changed":
            seen.append(frame["event"]["data"]["status"])
    await ws.close()
    assert seen == ["stock_reserved", "paid", "delivered", "completed"]

    order = await settled(client, buyer, order_id)
    assert order["status"] == "completed"
    assert order["buyerId"] == buyer_id
    assert order["items"] == [{"productId": product_id, "sellerId": seller_id, "quantity": 1,
                               "unitPrice": "10.00", "currency": "USD"}]
    assert (order["total"], order["currency"]) == ("10.00", "USD")
    assert order["payment"]["status"] == "captured"
    assert [h["status"] for h in order["history"]] == [
        "pending", "stock_reserved", "paid", "delivered", "completed"]
    assert (await client.get(f"/v1/orders/{order_id}", headers=seller_auth)).status == 200
    _, stranger = await account(client)
    assert (await client.get(f"/v1/orders/{order_id}", headers=stranger)).status == 404
    await stock_is(client, product_id, 4)

    # The same Idempotency-Key: the same order; with another body: refused.
    again = await client.post("/v1/orders", headers={**buyer, "Idempotency-Key": key}, json={
        "items": [{"productId": product_id, "quantity": 1}], "paymentMethod": "tok_visa"})
    assert again.status == 202
    assert (await again.json())["orderId"] == order_id
    other = await client.post("/v1/orders", headers={**buyer, "Idempotency-Key": key}, json={
        "items": [{"productId": product_id, "quantity": 2}], "paymentMethod": "tok_visa"})
    assert other.status == 422
    assert (await other.json())["code"] == "IDEMPOTENCY_KEY_REUSED"
    listed = await client.get("/v1/orders?as=seller&status=completed", headers=seller_auth)
    assert order_id in [o["orderId"] for o in (await listed.json())["data"]]

    async def downloaded() -> bool:
        response = await client.get(f"/v1/files/{file_id}/content", headers=buyer)
        return response.status == 200 and await response.read() == b"%PDF-1.4 the book"

    await eventually(downloaded, what="the buyer to download the purchased file")
    review = await client.post(f"/v1/products/{product_id}/reviews", headers=buyer,
                               json={"rating": 5, "comment": "great"})
    assert review.status == 201, await review.text()
    await _redelivery_changes_nothing(client, env, order_id, buyer, seller_auth, product_id,
                                      file_id)


async def _redelivery_changes_nothing(
    client: Client, env: Settings, order_id: str, buyer: dict[str, str],
    seller_auth: dict[str, str], product_id: str, file_id: str,
) -> None:
    """Re-produce every record of the saga, as a crash before the commits would."""
    before = await _observable(client, env, order_id, buyer, seller_auth, file_id)
    records = [r for r in await read_all(env, SAGA_TOPICS) if _about(r[2], order_id)]
    assert {env.topic(t) for t in SAGA_TOPICS} == {topic for topic, _, _ in records}
    await produce(env, records)
    await worker_caught_up(env, SAGA_TOPICS)
    await stock_is(client, product_id, 4)
    assert await _observable(client, env, order_id, buyer, seller_auth, file_id) == before


def _about(value: bytes, order_id: str) -> bool:
    data = Envelope.decode(value).data
    return order_id in (data.get("orderId"), data.get("params", {}).get("orderId"))


async def _observable(
    client: Client, env: Settings, order_id: str, buyer: dict[str, str],
    seller_auth: dict[str, str], file_id: str,
) -> dict[str, Any]:
    order = await (await client.get(f"/v1/orders/{order_id}", headers=buyer)).json()
    grants = await (await client.get(f"/v1/files/{file_id}/permissions",
                                     headers=seller_auth)).json()
    notes = await (await client.get("/v1/notifications", headers=buyer)).json()
    captured = {Envelope.decode(v).id for _, _, v in await read_all(env, ["payments"])
                if _about(v, order_id) and Envelope.decode(v).type == "payment.captured"}
    sent = (env.data_dir / "outbox" / "messages.jsonl").read_bytes().splitlines()
    return {"order": order, "grants": grants, "notifications": notes["data"],
            "charges": len(captured),
            "emails": [m for m in map(orjson.loads, sent)
                       if m["params"].get("orderId") == order_id]}


@pytest.mark.parametrize(("method", "reason"), [
    ("tok_declined", "declined"), ("tok_timeout", "provider_timeout"),
    ("tok_error", "provider_error")])
async def test_a_failed_payment_releases_the_stock(
    client: Client, seller: tuple[str, dict[str, str]], method: str, reason: str,
) -> None:
    product_id = await product(client, seller[1], stock=3)
    _, buyer = await account(client)
    order_id = await place(client, buyer, [(product_id, 2)], method=method)
    order = await settled(client, buyer, order_id)
    assert order["status"] == "payment_failed"
    assert order["history"][-1]["reason"].startswith(reason)
    await stock_is(client, product_id, 3)


async def test_out_of_stock_is_rejected(
    client: Client, seller: tuple[str, dict[str, str]],
) -> None:
    product_id = await product(client, seller[1], stock=1)
    _, buyer = await account(client)
    order = await settled(client, buyer, await place(client, buyer, [(product_id, 2)]))
    assert order["status"] == "rejected"
    assert "out of stock" in order["history"][-1]["reason"]


async def test_cancel_after_payment_refunds_and_releases(
    client: Client, seller: tuple[str, dict[str, str]],
) -> None:
    product_id = await product(client, seller[1], stock=2)
    _, buyer = await account(client)
    order_id = await place(client, buyer, [(product_id, 1)])
    await settled(client, buyer, order_id, until={"completed"})
    cancelled = await client.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
    assert cancelled.status == 202, await cancelled.text()
    order = await settled(client, buyer, order_id, until={"refunded"})
    assert order["payment"]["status"] == "refunded"
    await stock_is(client, product_id, 2)
    again = await client.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
    assert again.status == 409
    assert (await again.json())["code"] == "ORDER_NOT_CANCELLABLE"


async def test_fifty_buyers_racing_for_ten_units_complete_exactly_ten_orders(
    client: Client, seller: tuple[str, dict[str, str]], env: Settings,
) -> None:
    product_id = await product(client, seller[1], stock=10)
    tokens = TokenService(env)
    buyers = [{"Authorization": f"Bearer {tokens.issue_access(uuid.uuid4().hex, ['buyer'])}"}
              for _ in range(50)]
    # Two requests with one key race too: they must make one order.
    key = uuid.uuid4().hex
    twins = await asyncio.gather(*(place(client, buyers[0], [(product_id, 1)], key=key)
                                   for _ in range(2)))
    assert twins[0] == twins[1]
    order_ids = [twins[0], *await asyncio.gather(
        *(place(client, b, [(product_id, 1)]) for b in buyers[1:]))]
    orders = [await settled(client, b, o, within=120)
              for b, o in zip(buyers, order_ids, strict=True)]
    statuses = sorted(o["status"] for o in orders)
    assert statuses == ["completed"] * 10 + ["rejected"] * 40
    await stock_is(client, product_id, 0)
