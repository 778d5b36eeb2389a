"""Answers of public reads in Redis, shared by every gateway, with one fill per key.

Entries live under a *generation* per scope (one product, or every listing): dropping a
scope increments its generation, so every entry of the older one is unreachable at once
(and expires on its own). A fill records the generation it read before going to the
read model and writes under it, so a fill that raced a change writes where nobody reads:
it can never bring back the old version once the change has dropped the scope.

Concurrent misses of one entry on one gateway share a single read of the read model
(``SingleFlight``); each gateway fills at most once per entry and generation.

Redis down is not an outage of public reads: a failed cache call logs and the read model
answers (the outage shows in readiness and the other Redis users).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.runtime.singleflight import SingleFlight

log = logging.getLogger(__name__)

# A generation outlives every entry written under it many times over, so a generation
# key that expires (and restarts at 0) finds no entry of the old generation 0 alive.
GENERATION_SECONDS = 86_400
LISTINGS = "l"
# One round trip per read: the scope's generation, then the entry under it.
_READ = """
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}
"""
# A drop is one command however many scopes a push batch touched (it runs per batch).
_DROP = """
for _, name in ipairs(KEYS) do
  redis.call('INCR', name)
  redis.call('EXPIRE', name, ARGV[1])
end
return #KEYS
"""
_TAG_END = b"\n"

# What a fill answers: an entry, or None for an answer not to keep (a 404).
E = TypeVar("E", bound=bytes | None)


def product_scope(product_id: str) -> str:
    """The scope of one product's answers (its page, its ``?fields=`` and ``?include=``)."""
    return f"p:{product_id}"


def pack(etag: str, body: bytes) -> bytes:
    """An entry: the answer's ETag, then its JSON body."""
    return etag.encode() + _TAG_END + body


def unpack(entry: bytes) -> tuple[str, bytes]:
    """The ETag and body of an entry ``pack`` made."""
    tag, body = entry.split(_TAG_END, 1)
    return tag.decode(), body


def _keep_nothing(_: bytes | None) -> None:
    # The fill writes Redis itself; nothing is kept in the process.
    return None


class ResponseCache:
    """Entries by scope and key, each generation of a scope dropped at once."""

    def __init__(self, redis: Redis, *, prefix: str, ttl: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl
        self._read = redis.register_script(_READ)
        self._drop = redis.register_script(_DROP)
        self._flights: SingleFlight[tuple[str, bytes, str], Any] = SingleFlight()
        # Scopes whose drop failed here (Redis slow or away), read through until their
        # entries have expired: otherwise a change could be hidden for a whole ttl.
        self._distrusted: dict[str, float] = {}
        # For /metrics-style inspection and the tests: answers served, missed, read through.
        self.hits = 0
        self.misses = 0
        self.fills = 0

    def _generation(self, scope: str) -> str:
        return f"{self._prefix}g:{scope}"

    def _entries(self, scope: str) -> str:
        return f"{self._prefix}e:{scope}:"

    async def fetch(self, scope: str, key: str, load: Callable[[], Awaitable[E]]) -> E:
        """The entry ``key`` of ``scope``, filled by ``load()`` on a miss (None: not kept)."""
        until = self._distrusted.get(scope)
        if until is not None:
            if time.monotonic() < until:
                return await load()
            del self._distrusted[scope]
        try:
            generation, entry = await self._read(
                keys=[self._generation(scope)], args=[self._entries(scope), key]
            )
        except RedisError as exc:
            log.warning("response cache unavailable; reading through", extra={"error": repr(exc)})
            return await load()
        if entry is not None:
            self.hits += 1
            return cast(E, bytes(entry))
        self.misses += 1
        filled: E = await self._flights.load(
            (scope, generation, key),
            lambda: self._fill(scope, generation, key, load),
            _keep_nothing,
        )
        return filled

    async def _fill(
        self, scope: str, generation: bytes, key: str, load: Callable[[], Awaitable[E]]
    ) -> E:
        self.fills += 1
        entry = await load()
        if entry is not None:
            name = f"{self._entries(scope)}{generation.decode()}:{key}"
            try:
                await self._redis.set(name, entry, ex=self._ttl)
            except RedisError as exc:
                log.warning("response cache fill failed", extra={"error": repr(exc)})
        return entry

    def distrust(self, scopes: Iterable[str]) -> None:
        """A drop of ``scopes`` failed: read them through here until what was cached expired.

        Twice the ttl: a fill under way when the drop failed writes its entry a little later.
        """
        until = time.monotonic() + 2 * self._ttl
        for scope in scopes:
            self._distrusted[scope] = until

    async def drop(self, scopes: Iterable[str]) -> None:
        """Make every entry of ``scopes`` unreachable (one round trip for all of them)."""
        names = [self._generation(scope) for scope in set(scopes)]
        if names:
            await self._drop(keys=names, args=[GENERATION_SECONDS])
