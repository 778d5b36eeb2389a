"""Scale-out: the order pipeline on 8 partitions shared by two worker processes.

Orders placed over REST complete and the stock comes out right while the two workers each
own part of the saga's partitions, and both of them run some of these orders.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from config import Settings
from mercato.embedded import Endpoints
from stores.heartbeats import WorkerHeartbeats
from stores.redisdb import redis_client
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.failover import assignment
from tests.support.files import eventually
from tests.support.http import gateway_client
from tests.support.orders import Client, account, place, product, settled, stock_is
from tests.support.processes import running_worker

pytestmark = pytest.mark.e2e
PARTITIONS = 8
WORKERS = 2


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An isolated world whose topics have 8 partitions."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("scale-out")),
        topic_partitions=PARTITIONS,
        # Shared CI boxes stall a worker for seconds; a short session would rebalance.
        worker_session_timeout=20.0,
    )
    await ensure_topics(settings)
    return settings


async def saga_owners(settings: Settings) -> list[set[int]] | None:
    """The ``order-saga`` partitions of each member once the group is Stable, else None."""
    owners = await assignment(settings, "order-saga")
    return None if owners is None else list(owners.values())


async def split_between_workers(settings: Settings) -> list[set[int]] | None:
    """Each worker's saga partitions, once both process and own some of them all."""
    owners = await saga_owners(settings)
    if owners is None or len(owners) != WORKERS or not all(owners):
        return None
    redis = redis_client(settings)
    try:
        # Both beat only once their tables are open and recovered after the last rebalance.
        if await WorkerHeartbeats(redis, settings.app_id).processing() < WORKERS:
            return None
    finally:
        await redis.aclose()
    return owners


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """Two real worker processes, each with its own data dir (RocksDB), and the gateway."""
    workers = [dataclasses.replace(env, data_dir=env.data_dir / f"worker-{n}")
               for n in range(WORKERS)]
    async with (
        running_worker(workers[0], env.data_dir / "worker-0.log"),
        running_worker(workers[1], env.data_dir / "worker-1.log"),
        gateway_client(env) as c,
    ):
        yield c


async def saga_partitions(settings: Settings, order_ids: set[str]) -> set[int]:
    """The ``order-saga`` partitions that hold records of ``order_ids``."""
    topic = settings.topic("order-saga")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        found: set[int] = set()
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                if any((r.key or b"").decode() in order_ids for r in records):
                    found.add(tp.partition)
        return found
    finally:
        await consumer.stop()


@pytest.mark.timeout(360)
async def test_two_workers_share_eight_partitions_and_every_order_completes(
    client: Client, env: Settings,
) -> None:
    owners = await eventually(lambda: split_between_workers(env), within=120,
                              what="both workers to own saga partitions and process")
    assert set[int]().union(*owners) == set(range(PARTITIONS))
    assert sum(len(o) for o in owners) == PARTITIONS  # each partition has one owner

    _, seller = await account(client, "seller", patience=90)
    stock = {await product(client, seller, stock=20): 20 for _ in range(3)}
    buyers = [(await account(client))[1] for _ in range(4)]
    placed: dict[str, dict[str, str]] = {}
    for n in range(18):
        product_id = list(stock)[n % len(stock)]
        quantity = 1 + n % 2
        order_id = await place(client, buyers[n % len(buyers)], [(product_id, quantity)])
        placed[order_id] = buyers[n % len(buyers)]
        stock[product_id] -= quantity

    # One buyer follows an order live: the gateway's push hub hashes channels over 8 too.
    followed, follower = next(iter(placed.items()))
    ws = await client.ws_connect("/v1/ws", headers=follower)
    await ws.send_json({"type": "resume", "channel": f"order:{followed}", "after": "0"})
    seen: list[str] = []
    while "completed" not in seen:
        frame = await asyncio.wait_for(ws.receive_json(), 60)
        if frame["type"] == "event" and frame["event"]["type"] == "order.status_changed":
            seen.append(frame["event"]["data"]["status"])
    await ws.close()
    assert seen == ["stock_reserved", "paid", "delivered", "completed"]

    for order_id, buyer in placed.items():
        order = await settled(client, buyer, order_id, within=90)
        assert order["status"] == "completed", order
    for product_id, left in stock.items():
        await stock_is(client, product_id, left)

    # Both workers ran some of these sagas: their orders sit on partitions each one owns.
    used = await saga_partitions(env, set(placed))
    assert all(used & mine for mine in owners), (used, owners)
    # No rebalance meanwhile (nobody died), so those owners are the ones that ran them.
    now = await saga_owners(env)
    assert now is not None
    assert sorted(map(sorted, now)) == sorted(map(sorted, owners))
