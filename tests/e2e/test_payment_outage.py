"""A payment provider outage end to end: strangers' failing cards, an open circuit, refunds.

Issue #10, defects 5 and 6: a ``tok_timeout`` and a ``tok_error`` order (their provider
failures with all their retries) opened the payments agent's circuit breaker, and the
next ``tok_visa`` order of an unrelated buyer failed at once with ``circuit_open``; a
refund that met the open circuit stayed ``refund_failed`` for good. Now an order waits
for the provider until its charge deadline, and a refund is sent again until it works.

Everything a test needs (accounts, products) is made before the circuit is opened, so
only one request separates the opening from the charge or refund under test, against a
cool-down of many seconds: each test also checks, on the saga's own topic, that the
charge really was deferred or the refund really failed and was sent again. Outcomes are
polled with generous deadlines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import orjson
import pytest

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.http import worker_and_gateway
from tests.support.orders import (
    Client,
    account,
    place,
    product,
    read_all,
    settled,
    stock_is,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The default retries (3 attempts) with short calls; a breaker that two failures open."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("outage")),
        payment_call_timeout=0.3, payment_attempts=3, payment_backoff=0.05,
        payment_breaker_min_calls=2, payment_breaker_failure_rate=0.5,
        # Long enough that the circuit is surely still open when the one request after
        # strangers_fail arrives; the deferred charge then completes at the half-open trial.
        payment_breaker_cooldown=15.0,
        saga_reserve_timeout=20.0, saga_charge_timeout=90.0, saga_charge_retry=0.3,
        saga_refund_backoff=0.2, saga_refund_max_backoff=1.0,
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
async def seller(client: Client) -> dict[str, str]:
    """One seller for the module."""
    return (await account(client, "seller", patience=90))[1]


async def saga_saw(env: Settings, order_id: str, event_type: str) -> list[dict[str, object]]:
    """The payloads of ``event_type`` the saga received for ``order_id``."""
    records = await read_all(env, ["order-saga"])
    events = [orjson.loads(value) for _, key, value in records if key == order_id.encode()]
    return [e["data"] for e in events if e["type"] == event_type]


async def strangers_fail(
    client: Client, stranger: dict[str, str], product_id: str
) -> None:
    """The issue's two failing orders, by one buyer: enough to open the circuit."""
    for method, code in (("tok_timeout", "provider_timeout"), ("tok_error", "provider_error")):
        order = await settled(client, stranger, await place(
            client, stranger, [(product_id, 1)], method=method))
        assert order["status"] == "payment_failed"
        assert order["history"][-1]["reason"].startswith(code)


async def test_a_strangers_failing_cards_do_not_fail_the_next_buyers_order(
    client: Client, seller: dict[str, str], env: Settings,
) -> None:
    failing, product_id = await product(client, seller, stock=5), await product(
        client, seller, stock=2)
    (_, stranger), (_, buyer) = await account(client), await account(client)
    await strangers_fail(client, stranger, failing)
    order_id = await place(client, buyer, [(product_id, 1)])
    order = await settled(client, buyer, order_id, within=90)
    assert order["status"] == "completed", order["history"]
    assert order["payment"]["status"] == "captured"
    await stock_is(client, product_id, 1)
    # It did meet the open circuit: the charge was deferred, not failed, then captured.
    assert await saga_saw(env, order_id, "saga.payment_deferred")


async def test_a_refund_that_meets_the_open_circuit_is_retried_until_refunded(
    client: Client, seller: dict[str, str], env: Settings,
) -> None:
    failing, product_id = await product(client, seller, stock=5), await product(
        client, seller, stock=2)
    (_, stranger), (_, buyer) = await account(client), await account(client)
    order_id = await place(client, buyer, [(product_id, 1)])
    await settled(client, buyer, order_id, until={"completed"}, within=90)
    await strangers_fail(client, stranger, failing)

    cancelled = await client.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
    assert cancelled.status == 202, await cancelled.text()
    order = await settled(client, buyer, order_id, until={"refunded"}, within=90)
    assert order["payment"]["status"] == "refunded"
    await stock_is(client, product_id, 2)
    # It did meet the open circuit: a retryable failure first, then the refund sent again.
    failures = await saga_saw(env, order_id, "saga.refund_failed")
    assert failures, "the refund never met the open circuit"
    assert all(f["retryable"] for f in failures), failures
    again = await client.post(f"/v1/orders/{order_id}/cancel", headers=buyer)
    assert again.status == 409
    assert (await again.json())["code"] == "ORDER_NOT_CANCELLABLE"
