"""Typed application state every gateway domain may read, as ``web.AppKey``s.

State only one domain reads lives in that domain's own ``keys`` module
(``gateway/<domain>/keys.py``), so adding a domain does not edit this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from config import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from gateway.http.ratelimit import RateLimits
    from gateway.http.revocation import Revocations
    from gateway.identity.auth import Principal, TokenService
    from gateway.ops.metrics import Metrics
    from gateway.runtime.background import Background
    from gateway.runtime.commands import CommandBus
    from streams.flags.book import FlagBook

SETTINGS = web.AppKey("settings", Settings)
INSTANCE_ID = web.AppKey("instance_id", str)

# The backends (gateway.runtime.backends) and the work every domain hands to them.
MONGO_DB = web.AppKey("mongo_db", AsyncDatabase[dict[str, Any]])
REDIS = web.AppKey("redis", Redis)
PRODUCER: web.AppKey[AIOKafkaProducer] = web.AppKey("producer")
COMMANDS: web.AppKey[CommandBus] = web.AppKey("commands")
BACKGROUND: web.AppKey[Background] = web.AppKey("background")

# Read by the edge on every request and by the domains behind it.
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
REVOCATIONS: web.AppKey[Revocations] = web.AppKey("revocations")
# Rate limiting (gateway/http/ratelimit): absent when MERCATO_RATE_LIMIT_ENABLED is false.
RATE_LIMITS: web.AppKey[RateLimits] = web.AppKey("rate_limits")
# Feature flags (gateway/features), read by the edge (maintenance) and the routes they gate.
FLAGS: web.AppKey[FlagBook] = web.AppKey("flags")

# Per-request state.
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
# (user id named by the bearer token, that user's "not before" in ms), set by middleware.
NOT_BEFORE: web.RequestKey[tuple[str, int]] = web.RequestKey("not_before")
