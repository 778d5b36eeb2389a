"""The backends every domain uses, a ``cleanup_ctx`` each: teardown runs only if startup did."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import AIOKafkaProducer

from gateway import keys
from gateway.runtime.background import Background
from gateway.runtime.commands import CommandBus
from stores.mongo import database, ensure_indexes, mongo_client
from stores.redisdb import redis_client


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    """MongoDB client and indexes; the domains build their repositories over ``MONGO_DB``."""
    settings = app[keys.SETTINGS]
    client = mongo_client(settings, app_name=f"{settings.app_id}-gateway")
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        app[keys.MONGO_DB] = db
        yield
    finally:
        await client.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Redis connection pool."""
    client = redis_client(app[keys.SETTINGS])
    try:
        await client.ping()
        app[keys.REDIS] = client
        yield
    finally:
        await client.aclose()


async def kafka_ctx(app: web.Application) -> AsyncIterator[None]:
    """The producer and the command bus that waits for agents' answers."""
    settings = app[keys.SETTINGS]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-gateway-{app[keys.INSTANCE_ID]}",
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
        linger_ms=1,
        request_timeout_ms=10_000,
    )
    await producer.start()
    try:
        app[keys.PRODUCER] = producer
        bus = CommandBus(settings, producer, app[keys.INSTANCE_ID])
        await bus.start()
        try:
            app[keys.COMMANDS] = bus
            yield
        finally:
            await bus.stop()
    finally:
        await producer.stop()


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fire-and-forget work, drained before the producer closes (contexts unwind in reverse)."""
    background = Background()
    app[keys.BACKGROUND] = background
    try:
        yield
    finally:
        await background.drain()
