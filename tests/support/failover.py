"""Two workers in one group, one SIGKILLed under load: who owns what, and how long it paused.

Shared by ``tests/chaos/test_failover.py`` and ``bench/failover.py``. Everything is
observed from the outside: the group's assignment as the broker describes it, by each
worker run's client id (``streams.membership`` records it in the worker's data dir), and
the pause from the records themselves: the first ``orders`` record (the saga's output,
stamped by the producer) of an order whose ``order-saga`` partition moved, after the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from config import Settings
from streams.membership import CLIENT_ID_FILE
from tests.support.shop import Account

RETRY_PAUSE = 0.5  # between two tries of an order refused with 503 (nothing applied)


def client_id(data_dir: Path) -> str:
    """The client id of the worker run now using ``data_dir``."""
    return (data_dir / CLIENT_ID_FILE).read_text().strip()


async def assignment(settings: Settings, topic: str) -> dict[str, set[int]] | None:
    """Each member's partitions of ``topic`` (catalogue name) by client id; None unless Stable."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.app_id])
    finally:
        await admin.close()
    group = described[0].groups[0] if described and described[0].groups else None
    if group is None or group[2] != "Stable":
        return None
    name = settings.topic(topic)
    owners: dict[str, set[int]] = {}
    for member in group[5]:
        assigned = ConsumerProtocolMemberAssignment.decode(member[4]).partitions()
        owners.setdefault(member[1], set()).update(tp.partition for tp in assigned
                                                   if tp.topic == name)
    return owners


async def _records(
    settings: Settings, topic: str,
) -> AsyncIterator[tuple[int, str, int]]:
    """(partition, key, timestamp ms) of every record now on ``topic`` (catalogue name)."""
    name = settings.topic(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        assigned = [TopicPartition(name, p)
                    for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                for record in batch:
                    yield tp.partition, (record.key or b"").decode(), record.timestamp
    finally:
        await consumer.stop()


async def pause_after(settings: Settings, killed_at: float, moved: Iterable[int]) -> float | None:
    """Seconds from ``killed_at`` (epoch) to the first saga output on a ``moved`` partition.

    None if no order of those partitions has been processed since.
    """
    moved = set(moved)
    orders = {key async for partition, key, _ in _records(settings, "order-saga")
              if partition in moved}
    since = int(killed_at * 1000)
    stamps = [stamp async for _, key, stamp in _records(settings, "orders")
              if key in orders and stamp >= since]
    first = min(stamps, default=None)
    return None if first is None else first / 1000 - killed_at


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    """One accepted order: who placed it (through which gateway) and how it pays."""

    order_id: str
    buyer: Account
    method: str
    accepted: float  # time.monotonic() of its 202
    tries: int


class RetryingOrders:
    """One order of ``product_id`` every ``1 / rate`` s, round robin over ``buyers``.

    Open loop, as ``tests.support.load.OrderLoad``; but a 503 (nothing applied: a worker
    that does not answer in time, as during a failover) is tried again with the same
    Idempotency-Key until accepted, so every order offered is accepted in the end and each
    accepted order is known: an order refused once and applied later cannot go uncounted.
    Buyers bound to different gateways alternate between those gateways.
    """

    def __init__(self, buyers: Sequence[Account], product_id: str, *, rate: float,
                 patience: float) -> None:
        self._buyers = buyers
        self._product_id = product_id
        self._interval = 1.0 / rate
        self._patience = patience
        self.placed: list[Placed] = []
        self.refusals = 0
        self._inflight: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RetryingOrders]:
        """Offer orders for the block; on exit, wait until every order offered is accepted."""
        ticker = asyncio.create_task(self._tick(), name="failover-orders")
        try:
            yield self
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await asyncio.gather(*self._inflight)

    def since(self, moment: float) -> list[Placed]:
        """The orders accepted at or after ``moment`` (monotonic)."""
        return [p for p in self.placed if p.accepted >= moment]

    async def _tick(self) -> None:
        n = 0
        start = time.monotonic()
        while True:
            task = asyncio.create_task(self._place(self._buyers[n % len(self._buyers)], n))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n * self._interval - time.monotonic()))

    async def _place(self, buyer: Account, n: int) -> None:
        method = "tok_declined" if n % 4 == 3 else "tok_visa"
        body = {"items": [{"productId": self._product_id, "quantity": 1}],
                "paymentMethod": method}
        key = uuid.uuid4().hex
        deadline = time.monotonic() + self._patience
        for tries in range(1, 10_000):
            headers = {"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": key}
            async with buyer.http.post("/v1/orders", json=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                if response.status == 202:
                    self.placed.append(Placed(payload["orderId"], buyer, method,
                                              time.monotonic(), tries))
                    return
                assert response.status == 503, payload
                assert response.headers.get("Retry-After"), payload
            self.refusals += 1
            assert time.monotonic() < deadline, f"no order accepted in {self._patience}s"
            await asyncio.sleep(RETRY_PAUSE)
