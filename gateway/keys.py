"""Every piece of typed application state, as ``web.AppKey``s, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from config import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from gateway.auth import Principal, TokenService
    from gateway.commands import CommandBus
    from gateway.health import Readiness
    from gateway.metrics import Metrics
    from gateway.push.hub import PushHub
    from stores.users import UserRepository

SETTINGS = web.AppKey("settings", Settings)
INSTANCE_ID = web.AppKey("instance_id", str)
MONGO_DB = web.AppKey("mongo_db", AsyncDatabase[dict[str, Any]])
REDIS = web.AppKey("redis", Redis)
PRODUCER: web.AppKey[AIOKafkaProducer] = web.AppKey("producer")
COMMANDS: web.AppKey[CommandBus] = web.AppKey("commands")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
USERS: web.AppKey[UserRepository] = web.AppKey("users")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
PUSH_HUB: web.AppKey[PushHub] = web.AppKey("push_hub")
READINESS: web.AppKey[Readiness] = web.AppKey("readiness")

# Per-request state.
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
