"""One ``cleanup_ctx`` generator per resource: teardown runs only if startup finished."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiokafka import AIOKafkaProducer

from gateway import keys
from gateway.files.quota import UploadReservations
from gateway.http.ratelimit import open_rate_limits
from gateway.http.revocation import Revocations
from gateway.identity.profiles import ProfileCache
from gateway.identity.refresh_tokens import Sessions
from gateway.identity.reset_tokens import ResetTokens
from gateway.orders.idempotency import IdempotencyRecords
from gateway.runtime.background import Background
from gateway.runtime.commands import CommandBus
from stores.audit import AuditRepository
from stores.file_content import ContentStore
from stores.file_usage import UsageRepository
from stores.files import FileRepository
from stores.mongo import database, ensure_indexes, mongo_client
from stores.notifications import NotificationRepository
from stores.orders import OrderRepository
from stores.product_lookup import ProductLookup
from stores.products import ProductRepository
from stores.redisdb import redis_client
from stores.reviews import ReviewRepository
from stores.users import UserRepository


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    """MongoDB client, indexes and repositories."""
    settings = app[keys.SETTINGS]
    client = mongo_client(settings, app_name=f"{settings.app_id}-gateway")
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        app[keys.MONGO_DB] = db
        app[keys.USERS] = UserRepository(db)
        app[keys.PROFILES] = ProfileCache(app[keys.USERS])
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


async def files_ctx(app: web.Application) -> AsyncIterator[None]:
    """Files repositories and GridFS content over the database ``mongo_ctx`` opened."""
    db = app[keys.MONGO_DB]
    app[keys.FILES] = FileRepository(db)
    app[keys.FILE_USAGE] = UsageRepository(db)
    app[keys.FILE_CONTENT] = ContentStore(db)
    settings = app[keys.SETTINGS]
    app[keys.UPLOAD_RESERVATIONS] = UploadReservations(
        app[keys.REDIS], prefix=f"{settings.app_id}:"
    )
    yield


async def ratelimit_ctx(app: web.Application) -> AsyncIterator[None]:
    """Shared rate-limit buckets (own Redis client, fail-open) and the idle-client sweeper."""
    settings = app[keys.SETTINGS]
    if not settings.rate_limit_enabled:
        yield
        return
    async with open_rate_limits(settings, app[keys.METRICS].registry) as limits:
        app[keys.RATE_LIMITS] = limits
        yield


async def identity_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sessions, revocations and reset tokens (Redis), notification/audit reads, background work."""
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    prefix = f"{settings.app_id}:"
    app[keys.SESSIONS] = Sessions(redis, prefix=prefix, max_age=settings.session_max_age)
    # Kept as long as the tokens it can refuse live (stream tickets are shorter still).
    app[keys.REVOCATIONS] = Revocations(
        redis, prefix=prefix, retain_seconds=settings.access_token_ttl + 60
    )
    app[keys.RESET_TOKENS] = ResetTokens(redis, prefix=prefix)
    app[keys.NOTIFICATIONS] = NotificationRepository(app[keys.MONGO_DB])
    app[keys.AUDIT_LOGS] = AuditRepository(app[keys.MONGO_DB])
    background = Background()
    app[keys.BACKGROUND] = background
    try:
        yield
    finally:
        # Before the producer closes (contexts unwind in reverse): queued work may still send.
        await background.drain()


async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Products and reviews read models over the database ``mongo_ctx`` opened."""
    db = app[keys.MONGO_DB]
    app[keys.PRODUCTS] = ProductRepository(db)
    app[keys.REVIEWS] = ReviewRepository(db)
    yield


async def orders_ctx(app: web.Application) -> AsyncIterator[None]:
    """Orders read model, the catalog lookup for pricing, and Idempotency-Key records."""
    db = app[keys.MONGO_DB]
    app[keys.ORDERS] = OrderRepository(db)
    app[keys.ORDER_PRODUCTS] = ProductLookup(db)
    app[keys.IDEMPOTENCY] = IdempotencyRecords(app[keys.REDIS])
    yield
