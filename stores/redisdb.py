"""Redis wiring."""

from __future__ import annotations

from redis.asyncio import Redis

from config import Settings


def redis_client(settings: Settings) -> Redis:
    """A pooled client for the configured URL; it connects lazily, on first use."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        health_check_interval=30,
        decode_responses=False,
    )
