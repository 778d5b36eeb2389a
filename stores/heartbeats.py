"""Worker heartbeats in Redis: which workers are *processing*, not merely joined.

A worker joins its consumer group seconds before it can process: it still
opens its RocksDB tables and recovers them from changelogs. Readiness checks
and tests wait for a fresh heartbeat, which a worker only writes once its
rebalance and recovery are done. While it recovers, it reports how far it has got
instead (``recovering``), under a key that expires so a dead worker's report goes too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import orjson
from redis.asyncio import Redis

FRESH_SECONDS = 5.0
# Per table: {"restored": records applied since recovery began, "toRestore": records to apply}.
TableRecovery = Mapping[str, Mapping[str, int]]


class WorkerHeartbeats:
    """A sorted set ``{app_id}:workers``: member = worker id, score = last beat (ms).

    Recovery reports: ``{app_id}:recovery:{worker_id}`` (JSON, expiring), indexed by the
    sorted set ``{app_id}:recovering`` (member = worker id, score = last report, ms).
    """

    def __init__(self, redis: Redis, app_id: str) -> None:
        self._redis = redis
        self._key = f"{app_id}:workers"
        self._app_id = app_id
        self._recovering_key = f"{app_id}:recovering"

    async def beat(self, worker_id: str) -> None:
        """Record that ``worker_id`` is processing now, and forget long-silent workers."""
        now = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key, {worker_id: now})
            pipe.zremrangebyscore(self._key, 0, now - int(FRESH_SECONDS * 1000 * 12))
            pipe.expire(self._key, int(FRESH_SECONDS * 12))
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        """Forget ``worker_id`` (on a clean shutdown), its recovery report too."""
        await self._redis.zrem(self._key, worker_id)
        await self.recovered(worker_id)

    async def recovering(self, worker_id: str, tables: TableRecovery) -> None:
        """Report that ``worker_id`` is recovering ``tables``; gone unless renewed in time."""
        now = int(time.time() * 1000)
        ttl = int(FRESH_SECONDS * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._report_key(worker_id), orjson.dumps(tables), px=ttl)
            pipe.zadd(self._recovering_key, {worker_id: now})
            pipe.zremrangebyscore(self._recovering_key, 0, now - ttl)
            pipe.pexpire(self._recovering_key, ttl)
            await pipe.execute()

    async def recovered(self, worker_id: str) -> None:
        """Withdraw ``worker_id``'s recovery report (its recovery completed)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._report_key(worker_id))
            pipe.zrem(self._recovering_key, worker_id)
            await pipe.execute()

    async def recoveries(self) -> dict[str, TableRecovery]:
        """The fresh recovery reports, by worker id (empty when no worker recovers)."""
        since = int((time.time() - FRESH_SECONDS) * 1000)
        members = await self._redis.zrangebyscore(self._recovering_key, since, "+inf")
        if not members:
            return {}
        workers = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        reports = await self._redis.mget(
            [self._report_key(worker) for worker in workers]
        )
        # A report that expired between the two reads is a worker that stopped reporting.
        return {
            worker: orjson.loads(report)
            for worker, report in zip(workers, reports, strict=True)
            if report is not None
        }

    def _report_key(self, worker_id: str) -> str:
        return f"{self._app_id}:recovery:{worker_id}"

    async def processing(self, within: float = FRESH_SECONDS) -> int:
        """How many workers beat within the last ``within`` seconds."""
        since = int((time.time() - within) * 1000)
        count: int = await self._redis.zcount(self._key, since, "+inf")
        return count
