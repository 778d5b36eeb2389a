"""Every piece of typed application state, as ``web.AppKey``s, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from config import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from gateway.files.access import ProductOwnership
    from gateway.files.quota import UploadReservations
    from gateway.http.edge import Edge
    from gateway.http.ratelimit import Decision, RateLimits
    from gateway.http.revocation import Revocations
    from gateway.identity.auth import Principal, TokenService
    from gateway.identity.profiles import ProfileCache
    from gateway.identity.refresh_tokens import Sessions
    from gateway.identity.reset_tokens import ResetTokens
    from gateway.ops.health import Readiness
    from gateway.ops.metrics import Metrics
    from gateway.orders.idempotency import IdempotencyRecords
    from gateway.push.hub import PushHub
    from gateway.runtime.background import Background
    from gateway.runtime.commands import CommandBus
    from stores.audit import AuditRepository
    from stores.file_content import ContentStore
    from stores.file_usage import UsageRepository
    from stores.files import FileRepository
    from stores.notifications import NotificationRepository
    from stores.orders import OrderRepository
    from stores.product_lookup import ProductLookup
    from stores.products import ProductRepository
    from stores.reviews import ReviewRepository
    from stores.users import UserRepository

SETTINGS = web.AppKey("settings", Settings)
INSTANCE_ID = web.AppKey("instance_id", str)
MONGO_DB = web.AppKey("mongo_db", AsyncDatabase[dict[str, Any]])
REDIS = web.AppKey("redis", Redis)
PRODUCER: web.AppKey[AIOKafkaProducer] = web.AppKey("producer")
COMMANDS: web.AppKey[CommandBus] = web.AppKey("commands")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
USERS: web.AppKey[UserRepository] = web.AppKey("users")
PROFILES: web.AppKey[ProfileCache] = web.AppKey("profiles")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
PUSH_HUB: web.AppKey[PushHub] = web.AppKey("push_hub")
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
FILES: web.AppKey[FileRepository] = web.AppKey("files")
FILE_USAGE: web.AppKey[UsageRepository] = web.AppKey("file_usage")
FILE_CONTENT: web.AppKey[ContentStore] = web.AppKey("file_content")
# Quota held by uploads in flight (Redis), so concurrent uploads cannot overshoot it.
UPLOAD_RESERVATIONS: web.AppKey[UploadReservations] = web.AppKey("upload_reservations")
# Whether a caller may link files to a product: gateway.catalog.writes.SellerOwnsProduct.
PRODUCT_OWNERSHIP: web.AppKey[ProductOwnership] = web.AppKey("product_ownership")

# The edge (gateway.http.edge): its middleware, and headers for handlers that stream.
EDGE: web.AppKey[Edge] = web.AppKey("edge")

# Per-request state.
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")

# Rate limiting (gateway/ratelimit): absent when MERCATO_RATE_LIMIT_ENABLED is false.
RATE_LIMITS: web.AppKey[RateLimits] = web.AppKey("rate_limits")
# The limiter's verdict on a limited route, set by the edge (for handlers that stream)
# and replaced by ratelimit.charge, so the response's headers say what it left.
RATE_DECISION: web.RequestKey[Decision] = web.RequestKey("rate_decision")

# Identity and sessions.
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
REVOCATIONS: web.AppKey[Revocations] = web.AppKey("revocations")
RESET_TOKENS: web.AppKey[ResetTokens] = web.AppKey("reset_tokens")
BACKGROUND: web.AppKey[Background] = web.AppKey("background")
NOTIFICATIONS: web.AppKey[NotificationRepository] = web.AppKey("notifications")
AUDIT_LOGS: web.AppKey[AuditRepository] = web.AppKey("audit_logs")
# (user id named by the bearer token, that user's "not before" in ms), set by middleware.
NOT_BEFORE: web.RequestKey[tuple[str, int]] = web.RequestKey("not_before")

# Catalog and reviews.
PRODUCTS: web.AppKey[ProductRepository] = web.AppKey("products")
REVIEWS: web.AppKey[ReviewRepository] = web.AppKey("reviews")

# Orders.
ORDERS: web.AppKey[OrderRepository] = web.AppKey("orders")
ORDER_PRODUCTS: web.AppKey[ProductLookup] = web.AppKey("order_products")
IDEMPOTENCY: web.AppKey[IdempotencyRecords] = web.AppKey("idempotency")
