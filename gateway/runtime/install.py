"""The runtime as the gateway installs it: MongoDB, Redis, Kafka and the command bus, background."""

from __future__ import annotations

from gateway.domain import Domain
from gateway.runtime.backends import background_ctx, kafka_ctx, mongo_ctx, redis_ctx

DOMAIN = Domain("runtime", contexts=(mongo_ctx, redis_ctx, kafka_ctx, background_ctx))
