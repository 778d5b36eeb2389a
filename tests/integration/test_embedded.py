"""The embedded services really answer, keep data across restarts and fail loudly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from config import Settings
from mercato.embedded import EmbeddedStack, Endpoints, Service, ServiceFailed
from streams.admin import ensure_topics
from streams.topics import CATALOGUE, partitions
from tests.support.processes import exited, survivors, watched

pytestmark = pytest.mark.integration


def _bootstrap(endpoints: Endpoints) -> str:
    return endpoints.kafka_url.removeprefix("kafka://")


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, value: bytes, *, idempotent: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=idempotent)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str, topic: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        await consumer.commit()
        value: bytes | None = record.value
        return value
    finally:
        await consumer.stop()


async def test_kafka_round_trip(stack: Endpoints) -> None:
    topic = f"probe-{uuid4().hex[:8]}"
    await _create_topic(_bootstrap(stack), topic)
    await _produce(_bootstrap(stack), topic, b"hello", idempotent=True)
    assert await _consume_one(_bootstrap(stack), topic) == b"hello"


async def test_mongo_answers(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    try:
        assert (await client.admin.command("ping"))["ok"] == 1
        collection = client[settings.mongo_database]["probe"]
        await collection.insert_one({"_id": "a", "n": 1})
        assert await collection.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    finally:
        await client.close()


async def test_redis_answers(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        key = f"{settings.topic_prefix}probe"
        await redis.set(key, b"v", ex=60)
        assert await redis.get(key) == b"v"
    finally:
        await redis.aclose()


async def test_ensure_topics_creates_then_reports_exists(settings: Settings) -> None:
    first = await ensure_topics(settings)
    names = {settings.topic(spec.name) for spec in CATALOGUE}
    assert first == dict.fromkeys(names, "created")
    second = await ensure_topics(settings)
    assert second == dict.fromkeys(names, "exists")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(names))
    finally:
        await admin.close()
    counts = {t["topic"]: len(t["partitions"]) for t in described}
    assert counts == {
        settings.topic(spec.name): partitions(settings, spec.name) for spec in CATALOGUE
    }


def test_port_in_use_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        only: list[Service] = ["redis"]
        stack = EmbeddedStack(tmp_path, services=only, ports={"redis": port})
        started = time.monotonic()
        with pytest.raises(ServiceFailed, match=rf"redis failed: port 127\.0\.0\.1:{port}"):
            stack.start()
    assert time.monotonic() - started < 2
    assert stack.pids == {}


@pytest.mark.parametrize(
    ("service", "expected"), [("kafka", "File exists"), ("mongo", "FileExistsError")]
)
def test_crashing_service_reports_its_log_tail(
    tmp_path: Path, service: Service, expected: str
) -> None:
    # A file where the service's data directory should be makes the server exit at once.
    (tmp_path / service).write_text("not a directory")
    stack = EmbeddedStack(tmp_path, services=[service], startup_timeout=60)
    started = time.monotonic()
    with pytest.raises(ServiceFailed) as failure:
        stack.start()
    assert time.monotonic() - started < 15, "an early exit must not wait for the timeout"
    message = str(failure.value)
    assert f"{service} failed: exited with code" in message
    assert "command: " in message
    assert expected in message
    assert expected in failure.value.log_tail
    assert stack.pids == {}


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    topic, doc_id = "durable", uuid4().hex
    stack = EmbeddedStack(tmp_path)
    endpoints = await asyncio.to_thread(stack.start)
    try:
        await _create_topic(_bootstrap(endpoints), topic)
        await _produce(_bootstrap(endpoints), topic, b"kept", idempotent=True)
        mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(endpoints.mongo_url)
        await mongo["mercato"]["docs"].insert_one({"_id": doc_id})
        await mongo.close()
        redis = Redis.from_url(endpoints.redis_url)
        await redis.set("kept", b"yes")
        await redis.aclose()
    finally:
        await asyncio.to_thread(stack.stop)

    endpoints = await asyncio.to_thread(stack.start)
    try:
        assert await _consume_one(_bootstrap(endpoints), topic) == b"kept"
        mongo = AsyncMongoClient(endpoints.mongo_url)
        assert await mongo["mercato"]["docs"].find_one({"_id": doc_id}) == {"_id": doc_id}
        await mongo.close()
        redis = Redis.from_url(endpoints.redis_url)
        assert await redis.get("kept") == b"yes"
        await redis.aclose()
    finally:
        await asyncio.to_thread(stack.stop)


async def test_tansu_round_trip(tmp_path: Path) -> None:
    only: list[Service] = ["kafka"]
    stack = EmbeddedStack(tmp_path, broker="tansu", services=only)
    endpoints = await asyncio.to_thread(stack.start)
    try:
        assert endpoints.broker == "tansu"
        assert endpoints.mongo_url == endpoints.redis_url == ""
        topic = f"probe-{uuid4().hex[:8]}"
        await _create_topic(_bootstrap(endpoints), topic)
        # Tansu has no idempotent producer (InitProducerId fails with UnknownError).
        await _produce(_bootstrap(endpoints), topic, b"tansu", idempotent=False)
        assert await _consume_one(_bootstrap(endpoints), topic) == b"tansu"
    finally:
        await asyncio.to_thread(stack.stop)


# The parent blocks on its stdin, not on a sleep: it cannot exit on its own before the
# test kills it, and it ends with the test whatever happens (the pipe closes).
_PARENT = """
import json, sys
from pathlib import Path
from mercato.embedded import EmbeddedStack
stack = EmbeddedStack(Path(sys.argv[1]), startup_timeout=60)
stack.start()
print(json.dumps(stack.pids), flush=True)
sys.stdin.read()
"""
DEATH_DEADLINE = 60.0  # generous: the kernel kills them at once, this only bounds a failure


def test_services_die_with_a_killed_parent(tmp_path: Path) -> None:
    # Flaky before: the children got SIGTERM when the parent died, and secantus answers
    # SIGTERM with a graceful stop() that takes 2 s idle and can hang on a busy machine;
    # and a pid polled in /proc could be reused meanwhile. Now they get SIGKILL from the
    # kernel and are watched through pidfds.
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, "the parent exited before starting the stack"
        pids: dict[str, int] = json.loads(line)
        assert set(pids) == {"kafka", "mongo", "redis"}
        with watched(pids) as pidfds:
            assert exited(pidfds) == [], "a service died before its parent"
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(DEATH_DEADLINE)
            assert not survivors(pidfds, DEATH_DEADLINE)
    finally:
        parent.kill()
        parent.wait()
        for pipe in (parent.stdin, parent.stdout):
            if pipe is not None:
                pipe.close()
