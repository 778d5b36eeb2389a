"""Stuck orders for admins: the list, the retry, and a second cancel of a refunding order.

The circuit breaker here stays open for an hour once one charge fails, and a failed refund
waits an hour before its automatic retry: a refund of this module then fails, and stays
failed, deterministically, until someone re-drives it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import Envelope
from tests.conftest import make_settings
from tests.support.files import eventually
from tests.support.http import worker_and_gateway
from tests.support.orders import Client, account, place, product, read_all, settled

pytestmark = pytest.mark.integration
HOUR = 3600.0


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A breaker that one failed charge (after a success) opens for an hour."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("admin-orders")),
        payment_call_timeout=0.2, payment_attempts=2, payment_backoff=0.05,
        payment_breaker_min_calls=2, payment_breaker_failure_rate=0.5,
        payment_breaker_cooldown=HOUR, saga_refund_backoff=HOUR, saga_refund_max_backoff=HOUR,
        saga_reserve_timeout=20.0, saga_charge_timeout=20.0, worker_session_timeout=20.0,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A real worker process and the gateway in process."""
    async with worker_and_gateway(env) as c:
        yield c


@pytest.fixture(scope="module")
def admin(env: Settings) -> dict[str, str]:
    """An admin's bearer header (the gateway trusts the token's roles)."""
    token = TokenService(env).issue_access(uuid.uuid4().hex, ["admin"])
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def world(client: Client) -> dict[str, Any]:
    """A completed order whose refund met the open circuit, and a failed order."""
    _, seller = await account(client, "seller", patience=90)
    product_id = await product(client, seller, stock=5)
    _, buyer = await account(client)
    refunding = await place(client, buyer, [(product_id, 1)])
    await settled(client, buyer, refunding, until={"completed"})
    failed = await place(client, buyer, [(product_id, 1)], method="tok_timeout")
    assert (await settled(client, buyer, failed))["status"] == "payment_failed"  # circuit open
    cancelled = await client.post(f"/v1/orders/{refunding}/cancel", headers=buyer)
    assert cancelled.status == 202, await cancelled.text()
    order = await refund_failed(client, buyer, refunding)
    assert order["status"] == "completed"
    return {"buyer": buyer, "refunding": refunding, "failed": failed}


async def refund_failed(client: Client, buyer: dict[str, str], order_id: str) -> dict[str, Any]:
    """The order once its (latest) refund attempt has failed."""
    async def probe() -> dict[str, Any] | None:
        order: dict[str, Any] = await (
            await client.get(f"/v1/orders/{order_id}", headers=buyer)).json()
        return order if order["payment"]["status"] == "refund_failed" else None

    return await eventually(probe, within=30, what="the refund to fail")


async def refunds_caused_by(env: Settings, order_id: str) -> list[str]:
    """For each refund command of ``order_id``, the type of the saga message that sent it."""
    saga = {Envelope.decode(v).id: Envelope.decode(v).type
            for _, _, v in await read_all(env, ["order-saga"])}
    commands = [Envelope.decode(v) for _, _, v in await read_all(env, ["payment-commands"])]
    return [saga.get(c.causation_id or "", "?") for c in commands
            if c.type == "payment.refund_requested" and c.key == order_id]


async def test_admins_list_stuck_orders(
    client: Client, admin: dict[str, str], world: dict[str, Any],
) -> None:
    response = await client.get("/v1/admin/orders?stuck=true", headers=admin)
    assert response.status == 200, await response.text()
    stuck = {o["orderId"]: o for o in (await response.json())["data"]}
    assert world["refunding"] in stuck
    assert world["failed"] not in stuck  # failed and compensated: nothing to do
    assert stuck[world["refunding"]]["stuck"] == "refund_failed"
    assert stuck[world["refunding"]]["payment"]["status"] == "refund_failed"

    # Without the filter: every order, paginated like the other lists.
    seen: list[str] = []
    url = "/v1/admin/orders?limit=1"
    while url:
        page = await (await client.get(url, headers=admin)).json()
        assert len(page["data"]) <= 1
        seen += [o["orderId"] for o in page["data"]]
        cursor = page["pagination"]["nextCursor"]
        url = f"/v1/admin/orders?limit=1&cursor={cursor}" if cursor else ""
    assert {world["refunding"], world["failed"]} <= set(seen)
    assert len(seen) == len(set(seen))


async def test_a_second_cancel_and_an_admins_retry_send_the_refund_again(
    client: Client, env: Settings, admin: dict[str, str], world: dict[str, Any],
) -> None:
    order_id = world["refunding"]
    assert await refunds_caused_by(env, order_id) == ["order.cancel_requested"]
    again = await client.post(f"/v1/orders/{order_id}/cancel", headers=world["buyer"])
    assert again.status == 202, await again.text()
    await refund_failed(client, world["buyer"], order_id)  # the circuit is still open
    retried = await client.post(f"/v1/admin/orders/{order_id}/retry", headers=admin)
    assert retried.status == 202, await retried.text()
    assert await retried.json() == {"orderId": order_id, "status": "completed"}
    assert retried.headers["Location"] == f"/v1/orders/{order_id}"
    assert await refunds_caused_by(env, order_id) == [
        "order.cancel_requested", "order.cancel_requested", "order.retry_requested"]


async def test_a_retry_is_refused_unless_stuck_known_and_asked_by_an_admin(
    client: Client, env: Settings, admin: dict[str, str], world: dict[str, Any],
) -> None:
    not_stuck = await client.post(f"/v1/admin/orders/{world['failed']}/retry", headers=admin)
    assert not_stuck.status == 409
    assert (await not_stuck.json())["code"] == "ORDER_NOT_STUCK"
    unknown = await client.post("/v1/admin/orders/nope/retry", headers=admin)
    assert unknown.status == 404
    assert unknown.content_type == "application/problem+json"
    path = f"/v1/admin/orders/{world['refunding']}/retry"
    as_buyer = await client.post(path, headers=world["buyer"])
    assert (as_buyer.status, (await as_buyer.json())["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert (await client.post(path)).status == 401
    assert (await client.get("/v1/admin/orders", headers=world["buyer"])).status == 403
    assert (await client.get("/v1/admin/orders")).status == 401
    bad = await client.get("/v1/admin/orders?stuck=maybe", headers=admin)
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "stuck"
