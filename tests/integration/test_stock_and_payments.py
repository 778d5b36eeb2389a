"""Stock and payments end to end: the PATCH, racing reserves and charges on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import Envelope, new_event
from streams.events.inventory import ReserveRequested
from streams.events.payments import ChargeRequested
from tests.conftest import make_settings
from tests.support.http import gateway_client
from tests.support.processes import running_worker

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]
SELLER, RIVAL, ADMIN = "u-seller", "u-rival", "u-admin"


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One isolated world (topics, group, database) shared by this module's tests."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("commerce")),
        payment_call_timeout=0.2,
        payment_backoff=0.05,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def worker(env: Settings) -> AsyncIterator[None]:
    """A real ``mercato worker`` process for the module."""
    async with running_worker(env, env.data_dir / "worker.log"):
        yield


@pytest.fixture(scope="module")
async def client(env: Settings, worker: None) -> AsyncIterator[Client]:
    """The gateway, in process, against the same world."""
    async with gateway_client(env) as c:
        await warmed_up(c, env)
        yield c


async def warmed_up(client: Client, env: Settings, within: float = 60.0) -> None:
    """Wait until the worker answers: it joins the group before its tables are open."""
    product = await listed(env, "p-warmup")
    deadline = time.monotonic() + within
    while True:
        response = await change(client, env, product, 1)
        if response.status != 503 or time.monotonic() > deadline:
            assert response.status == 200, await response.text()
            return


def auth(env: Settings, user_id: str, role: str) -> dict[str, str]:
    """A bearer header for ``user_id`` (the gateway trusts the token's roles)."""
    return {"Authorization": f"Bearer {TokenService(env).issue_access(user_id, [role])}"}


async def listed(env: Settings, product_id: str, seller_id: str = SELLER) -> str:
    """Put a product in the catalog's read model, as the catalog agent would have."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env.mongo_url)
    try:
        await mongo[env.mongo_database]["products"].update_one(
            {"_id": product_id},
            {"$set": {"sellerId": seller_id, "status": "active"}},
            upsert=True,
        )
    finally:
        await mongo.close()
    return product_id


async def change(client: Client, env: Settings, product_id: str, delta: int, **who: str) -> Any:
    user, role = who.get("user", SELLER), who.get("role", "seller")
    return await client.patch(
        f"/v1/products/{product_id}/stock",
        json={"quantityChange": delta},
        headers=auth(env, user, role),
    )


async def test_patch_stock_answers_the_new_level_and_guards_it(
    client: Client, env: Settings
) -> None:
    product = await listed(env, "p-patch")
    first = await change(client, env, product, 10)
    assert first.status == 200, await first.text()
    assert await first.json() == {"productId": product, "currentStock": 10}
    down = await change(client, env, product, -4)
    assert (await down.json())["currentStock"] == 6

    too_much = await change(client, env, product, -7)
    assert too_much.status == 409
    assert too_much.content_type == "application/problem+json"
    assert (await too_much.json())["code"] == "INSUFFICIENT_STOCK"

    rival = await change(client, env, product, 5, user=RIVAL)
    assert rival.status == 403
    buyer = await change(client, env, product, 5, user="u-buyer", role="buyer")
    assert buyer.status == 403
    missing = await change(client, env, "p-nowhere", 5)
    assert missing.status == 404
    zero = await change(client, env, product, 0)
    assert zero.status == 422
    assert (await zero.json())["errors"][0]["field"] == "quantityChange"

    admin = await change(client, env, product, 1, user=ADMIN, role="admin")
    assert admin.status == 200
    assert (await admin.json())["currentStock"] == 7


async def test_fifty_concurrent_reserves_for_ten_units_reserve_exactly_ten(
    client: Client, env: Settings
) -> None:
    product = await listed(env, "p-race")
    assert (await change(client, env, product, 10)).status == 200
    commands = [reserve_command(product, f"o-race-{i}") for i in range(50)]
    order_ids = {Envelope.decode(c.encode()).data["orderId"] for c in commands}

    async with producer(env) as send:
        await asyncio.gather(*(send("inventory-commands", product, c.encode()) for c in commands))
        results = await saga_results(env, lambda rs: len(mine(rs, order_ids)) >= 50)
        mine_now = mine(results, order_ids)
        reserved = [e for e in mine_now if e.type == "saga.stock_reserved"]
        rejected = [e for e in mine_now if e.type == "saga.stock_rejected"]
        assert (len(reserved), len(rejected)) == (10, 40)
        assert {e.data["reason"] for e in rejected} == {"out_of_stock"}
        assert all(e.key == e.data["orderId"] for e in mine_now)  # keyed by order id
        assert await level(client, env, product) == 0

        # Redeliver one command that reserved: it must not take a second unit.
        winner = next(c for c in commands if c.data["orderId"] == reserved[0].key)
        assert (await change(client, env, product, 1)).status == 200
        await send("inventory-commands", product, winner.encode())
        results = await saga_results(env, lambda rs: len(mine(rs, order_ids)) >= 51)
        again = [e for e in mine(results, order_ids) if e.type == "saga.stock_reserved"]
        assert len(again) == 11
        assert len({e.id for e in again}) == 10  # the repeat reuses the original event id
        assert await level(client, env, product) == 1


async def test_charges_settle_once_and_tell_the_saga_and_the_public(env: Settings) -> None:
    methods = {"o-pay-visa": "tok_visa", "o-pay-no": "tok_declined", "o-pay-slow": "tok_timeout"}
    commands = {order: charge_command(order, method) for order, method in methods.items()}
    async with producer(env) as send:
        for order, command in commands.items():
            await send("payment-commands", order, command.encode())
        await send("payment-commands", "o-pay-visa", commands["o-pay-visa"].encode())  # again
        results = await saga_results(env, lambda rs: len(payments(rs, methods)) >= 4)

    by_order: dict[str, list[Envelope]] = {}
    for event in payments(results, methods):
        by_order.setdefault(event.key, []).append(event)
    visa = by_order["o-pay-visa"]
    assert [e.type for e in visa] == ["saga.payment_captured"] * 2
    assert visa[0].id == visa[1].id
    assert visa[0].data["reference"].startswith("sim_ch_")
    assert [e.data["code"] for e in by_order["o-pay-no"]] == ["declined"]
    assert [e.data["code"] for e in by_order["o-pay-slow"]] == ["provider_timeout"]

    public = await saga_results(
        env, lambda rs: len(payments(rs, methods)) >= 4, topic="payments"
    )
    assert sorted(e.type for e in payments(public, methods)) == [
        "payment.captured", "payment.captured", "payment.failed", "payment.failed",
    ]
    assert all("tok_" not in str(e.data) for e in public)


def charge_command(order_id: str, method: str) -> Envelope:
    return new_event(
        ChargeRequested(
            order_id=order_id, payment_id=f"pay-{order_id}", idempotency_key=f"charge:{order_id}",
            amount=Decimal("19.99"), currency="EUR", payment_method=method,
        ),
        key=order_id,
        source="tests",
    )


def payments(results: list[Envelope], orders: dict[str, str]) -> list[Envelope]:
    return [e for e in results if e.key in orders and e.type.startswith(("saga.pay", "payment."))]


def reserve_command(product_id: str, order_id: str) -> Envelope:
    return new_event(
        ReserveRequested(
            reservation_id=f"{order_id}:{product_id}", order_id=order_id,
            product_id=product_id, quantity=1,
        ),
        key=product_id,
        source="tests",
    )


def mine(results: list[Envelope], order_ids: set[str]) -> list[Envelope]:
    return [e for e in results if e.key in order_ids and e.type.startswith("saga.stock_")]


async def level(client: Client, env: Settings, product_id: str) -> int:
    """The current stock, read back through a zero-sum pair of adjustments."""
    up = await change(client, env, product_id, 1)
    assert up.status == 200
    down = await change(client, env, product_id, -1)
    assert down.status == 200
    current: int = (await down.json())["currentStock"]
    return current


@contextlib.asynccontextmanager
async def producer(env: Settings) -> AsyncIterator[Callable[[str, str, bytes], Awaitable[Any]]]:
    """A plain aiokafka producer, yielded as ``send(topic, key, value)``."""
    kafka = AIOKafkaProducer(bootstrap_servers=env.kafka_bootstrap, acks="all")
    await kafka.start()

    async def send(topic: str, key: str, value: bytes) -> Any:
        return await kafka.send_and_wait(env.topic(topic), key=key.encode(), value=value)

    try:
        yield send
    finally:
        await kafka.stop()


async def saga_results(
    env: Settings,
    done: Callable[[list[Envelope]], bool],
    within: float = 30.0,
    topic: str = "order-saga",
) -> list[Envelope]:
    """Everything on ``topic`` so far, read until ``done`` holds (or ``within`` seconds)."""
    consumer = AIOKafkaConsumer(
        env.topic(topic), bootstrap_servers=env.kafka_bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    out: list[Envelope] = []
    try:
        deadline = time.monotonic() + within
        while not done(out):
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(out)} saga results after {within}s")
            batch = await consumer.getmany(timeout_ms=250)
            for records in batch.values():
                out.extend(Envelope.decode(r.value) for r in records if r.value is not None)
        return out
    finally:
        await consumer.stop()
