"""Worker heartbeats in Redis: which workers are *processing*, not merely joined.

A worker joins its consumer group seconds before it can process: it still
opens its RocksDB tables and recovers them from changelogs. Readiness checks
and tests wait for a fresh heartbeat, which a worker only writes once its
rebalance and recovery are done.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

FRESH_SECONDS = 5.0


class WorkerHeartbeats:
    """A sorted set ``{app_id}:workers``: member = worker id, score = last beat (ms)."""

    def __init__(self, redis: Redis, app_id: str) -> None:
        self._redis = redis
        self._key = f"{app_id}:workers"

    async def beat(self, worker_id: str) -> None:
        """Record that ``worker_id`` is processing now, and forget long-silent workers."""
        now = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key, {worker_id: now})
            pipe.zremrangebyscore(self._key, 0, now - int(FRESH_SECONDS * 1000 * 12))
            pipe.expire(self._key, int(FRESH_SECONDS * 12))
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        """Forget ``worker_id`` (on a clean shutdown)."""
        await self._redis.zrem(self._key, worker_id)

    async def processing(self, within: float = FRESH_SECONDS) -> int:
        """How many workers beat within the last ``within`` seconds."""
        since = int((time.time() - within) * 1000)
        count: int = await self._redis.zcount(self._key, since, "+inf")
        return count
