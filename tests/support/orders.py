"""Helpers for the orders tests: accounts, products with stock, orders, waits, Kafka reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from streams.envelope import Envelope
from tests.support.files import eventually

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery"
ENDS = frozenset({"completed", "rejected", "payment_failed", "cancelled", "refunded"})


async def account(
    client: Client, role: str = "buyer", *, patience: float = 0
) -> tuple[str, dict[str, str]]:
    """A registered, signed-in user: (user id, Authorization header).

    ``patience``: seconds to keep retrying a 503 (nothing applied), for the first account
    while a fresh worker is still opening its tables.
    """
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": role.title(), "role": role}

    async def register() -> ClientResponse | None:
        response = await client.post("/v1/auth/register", json=body)
        return None if response.status == 503 and patience else response

    created = await eventually(register, within=patience or 1, what="a worker to answer")
    assert created.status == 201, await created.text()
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status == 200, await login.text()
    token = (await login.json())["accessToken"]
    return (await created.json())["userId"], {"Authorization": f"Bearer {token}"}


async def product(
    client: Client, seller: dict[str, str], *, stock: int, price: str = "10.00",
    file_ids: Iterable[str] = (),
) -> str:
    """A product created through the catalog API, once the inventory holds its stock."""
    created = await client.post("/v1/products", headers=seller, json={
        "name": f"Item {uuid.uuid4().hex[:6]}", "category": "ebooks", "price": price,
        "currency": "USD", "stock": stock, "fileIds": list(file_ids)})
    assert created.status == 201, await created.text()
    product_id: str = (await created.json())["productId"]
    await stock_is(client, product_id, stock)
    return product_id


async def stock_is(client: Client, product_id: str, expected: int) -> None:
    """Wait until the product's projected stock is ``expected``."""
    async def probe() -> bool:
        response = await client.get(f"/v1/products/{product_id}")
        return response.status == 200 and (await response.json())["stock"] == expected

    await eventually(probe, within=30, what=f"stock of {product_id} to be {expected}")


async def place(
    client: Client, buyer: dict[str, str], items: list[tuple[str, int]],
    method: str = "tok_visa", key: str | None = None,
) -> str:
    """POST /v1/orders; the order id of the 202."""
    response = await client.post(
        "/v1/orders", headers={**buyer, "Idempotency-Key": key or uuid.uuid4().hex},
        json={"items": [{"productId": p, "quantity": q} for p, q in items],
              "paymentMethod": method})
    assert response.status == 202, await response.text()
    order_id: str = (await response.json())["orderId"]
    return order_id


async def settled(client: Client, headers: dict[str, str], order_id: str,
                  until: Iterable[str] = ENDS, within: float = 60) -> dict[str, Any]:
    """The order once its status is one of ``until``."""
    wanted = frozenset(until)

    async def probe() -> dict[str, Any] | None:
        response = await client.get(f"/v1/orders/{order_id}", headers=headers)
        if response.status != 200:
            return None
        order: dict[str, Any] = await response.json()
        return order if order["status"] in wanted else None

    return await eventually(probe, within=within, what=f"order {order_id} to reach {wanted}")


async def read_all(settings: Settings, topics: Iterable[str]) -> list[tuple[str, bytes, bytes]]:
    """Every record now on ``topics`` (catalogue names): (topic name, key, value)."""
    return await read_topics(settings, [settings.topic(t) for t in topics])


async def read_topics(
    settings: Settings, names: Iterable[str]
) -> list[tuple[str, bytes, bytes]]:
    """Every record now on the topics named (full names, e.g. a table's changelog)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        assigned = [TopicPartition(name, p) for name in names
                    for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        out: list[tuple[str, bytes, bytes]] = []
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out.extend((tp.topic, r.key or b"", r.value or b"") for r in records)
        return out
    finally:
        await consumer.stop()


async def produce(settings: Settings, records: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Produce the records again, as a crash before the offset commit would redeliver them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            headers = Envelope.decode(value).headers()
            await producer.send_and_wait(topic, key=key, value=value, headers=headers)
    finally:
        await producer.stop()


async def worker_caught_up(settings: Settings, topics: Iterable[str]) -> None:
    """Wait until the worker's group has committed every record now on ``topics``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        await consumer.topics()
        assigned = [TopicPartition(settings.topic(t), p) for t in topics
                    for p in sorted(consumer.partitions_for_topic(settings.topic(t)) or ())]
        ends = await consumer.end_offsets(assigned)

        async def probe() -> bool:
            committed = await admin.list_consumer_group_offsets(settings.app_id)
            return all(tp in committed and committed[tp].offset >= end
                       for tp, end in ends.items() if end > 0)

        await eventually(probe, within=60, what="the worker to consume the redelivered records")
    finally:
        await consumer.stop()
        await admin.close()
