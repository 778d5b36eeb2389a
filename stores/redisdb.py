"""Redis wiring."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry

from config import Settings


def redis_client(
    settings: Settings, *, socket_timeout: float | None = None, retry: Retry | None = None,
    pool_timeout: float | None = None,
) -> Redis:
    """A pooled client for the configured URL; it connects lazily, on first use.

    redis-py's default pool raises "Too many connections" as soon as its 100 connections
    are busy, so the 101st concurrent request failed although Redis was up. This pool
    waits instead: a caller queues for a free connection up to ``redis_pool_timeout``
    seconds (or ``pool_timeout``), then gets ``ConnectionError``, which the stores report
    as unavailable. A burst is served as fast as Redis answers, with at most
    ``redis_max_connections`` commands in flight per client.
    """
    options: dict[str, object] = {}
    if retry is not None:
        options["retry"] = retry
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout if pool_timeout is None else pool_timeout,
        socket_connect_timeout=5 if socket_timeout is None else socket_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        decode_responses=False,
        **options,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it
