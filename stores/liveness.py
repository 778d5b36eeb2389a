"""Worker runs' liveness beats in Redis, by the client id each run names itself with.

Written every second by each worker from the moment it starts joining its group (before
its tables recover, unlike ``stores.heartbeats``), so a peer can tell a run that is
merely busy recovering from one that died (``agents.runtime.peers``).
"""

from __future__ import annotations

import time
from typing import cast

from redis.asyncio import Redis

# Beats older than this are dropped from the set: no live run is ever that quiet.
FORGET_SECONDS = 300


class Liveness:
    """A sorted set ``{app_id}:alive``: member = a run's client id, score = its last beat (ms)."""

    def __init__(self, redis: Redis, app_id: str) -> None:
        self._redis = redis
        self._key = f"{app_id}:alive"

    async def beat(self, client_id: str) -> None:
        """Record that the run ``client_id`` is alive now; drop long-silent runs."""
        now = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key, {client_id: now})
            pipe.zremrangebyscore(self._key, 0, now - FORGET_SECONDS * 1000)
            pipe.expire(self._key, FORGET_SECONDS)
            await pipe.execute()

    async def beats(self) -> dict[str, int]:
        """Each run's last beat (ms), by client id."""
        # redis-py types every reply shape zrange can have; withscores gives (member, score).
        found = cast(list[tuple[bytes | str, float]],
                     await self._redis.zrange(self._key, 0, -1, withscores=True))
        return {(m.decode() if isinstance(m, bytes) else m): int(s) for m, s in found}

    async def leave(self, client_id: str) -> None:
        """Forget ``client_id`` (it stops in order and leaves its group itself)."""
        await self._redis.zrem(self._key, client_id)
