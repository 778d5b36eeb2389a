"""Access-token revocation: a per-user "not before" instant, cached briefly in process.

Setting it (password reset, role change, admin action) refuses every access
token and stream ticket the user was issued earlier. Checking Redis on every
request would cost a round trip per request, so each gateway caches the value
per user for ``CACHE_SECONDS``: **another instance may accept a revoked token
for at most that long** (the instance that revokes applies it at once). The
Redis key lives as long as the tokens it can refuse (the access-token TTL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.runtime.singleflight import SingleFlight
from streams.errors import Unavailable

CACHE_SECONDS = 1.0
CACHE_SIZE = 50_000
# Users read per MGET by ``many``.
BATCH_SIZE = 500


class Revocations:
    """Reads and sets users' not-before instants (ms since the epoch; 0 means never)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        retain_seconds: int,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retain_ms = retain_seconds * 1000
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, int]] = {}
        # One Redis read per user at a time, however many requests wait for it.
        self._reads: SingleFlight[str, int] = SingleFlight()

    def key(self, user_id: str) -> str:
        """The Redis key of ``user_id``'s not-before instant."""
        return f"{self._prefix}auth:not-before:{user_id}"

    def cached(self, user_id: str) -> int | None:
        """The user's not-before instant if known fresh enough here, without awaiting."""
        hit = self._cache.get(user_id)
        if hit is not None and self._clock() - hit[0] < self._cache_seconds:
            return hit[1]
        return None

    async def not_before(self, user_id: str) -> int:
        """The user's not-before instant, at most ``cache_seconds`` stale.

        Raises ``Unavailable`` when Redis cannot be asked: a token that might be revoked
        is not waved through.
        """
        hit = self.cached(user_id)
        if hit is not None:
            return hit
        return await self._reads.load(
            user_id, lambda: self._fetch(user_id), lambda value: self._remember(user_id, value)
        )

    async def revoke(self, user_id: str) -> int:
        """Refuse every token issued to ``user_id`` before now; returns the instant (ms)."""
        now_ms = time.time_ns() // 1_000_000
        await self._redis.set(self.key(user_id), now_ms, px=self._retain_ms)
        self._remember(user_id, now_ms)
        return now_ms

    async def many(self, user_ids: Collection[str]) -> dict[str, int]:
        """Not-before instants of many users: cached ones as they are, the rest in batches.

        Raises ``Unavailable`` when Redis cannot be asked.
        """
        found: dict[str, int] = {}
        missing: list[str] = []
        for user_id in user_ids:
            hit = self.cached(user_id)
            if hit is None:
                missing.append(user_id)
            else:
                found[user_id] = hit
        for start in range(0, len(missing), BATCH_SIZE):
            chunk = missing[start:start + BATCH_SIZE]
            try:
                values = await self._redis.mget([self.key(u) for u in chunk])
            except RedisError:
                raise _store_unavailable() from None
            for user_id, raw in zip(chunk, values, strict=True):
                found[user_id] = self._remember(user_id, int(raw) if raw is not None else 0)
        return found

    async def _fetch(self, user_id: str) -> int:
        try:
            raw = await self._redis.get(self.key(user_id))
        except RedisError:
            raise _store_unavailable() from None
        return int(raw) if raw is not None else 0

    def _remember(self, user_id: str, value: int) -> int:
        # Instants only move forward: a read that started before a revoke() here and
        # answers after it must not bring the older instant back.
        known = self._cache.get(user_id)
        if known is not None and known[1] > value:
            value = known[1]
        elif len(self._cache) >= CACHE_SIZE and known is None:
            # Entries are short-lived anyway; dropping the oldest half keeps this O(1) amortised.
            for stale in list(self._cache)[: CACHE_SIZE // 2]:
                del self._cache[stale]
        self._cache[user_id] = (self._clock(), value)
        return value


def _store_unavailable() -> Unavailable:
    return Unavailable("the session store is unavailable; retry shortly")
