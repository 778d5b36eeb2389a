"""Answers of public reads in Redis, shared by every gateway, with one fill per key.

Entries live under a *generation* per scope (one product, or every listing): dropping a
scope increments its generation, so every entry of the older one is unreachable at once
(and expires on its own). A fill records the generation it read before going to the
read model and writes under it, so a fill that raced a change writes where nobody reads:
it can never bring back the old version once the change has dropped the scope.

Concurrent misses of one entry on one gateway share a single read of the read model
(``SingleFlight``); each gateway fills at most once per entry and generation.

A read first learns its scope's generation from a read sent after it arrived, shared by
the reads that queued meanwhile (``gateway.cache.generations``); a copy this gateway
holds of that generation (``gateway.cache.local``) answers it with no further round
trip, else the entry is read from Redis (or filled) under that generation. The bound is
the shared cache's: once a change's drop has completed (before the writing gateway
answers; before any gateway pushes the change's event), no read that arrives later, on
any gateway, is answered with the old version.

Redis down is not an outage of public reads: a failed cache call logs and the read model
answers (the outage shows in readiness and the other Redis users).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.cache.generations import GenerationReads
from gateway.cache.local import LocalEntries
from gateway.runtime.singleflight import SingleFlight

log = logging.getLogger(__name__)

# A generation outlives every entry written under it many times over, so a generation
# key that expires (and restarts at 0) finds no entry of the old generation 0 alive.
GENERATION_SECONDS = 86_400
# The longest a read waits for the cache before it reads the read model instead.
READ_SECONDS = 1.0
LISTINGS = "l"
# A drop is one command however many scopes a push batch touched (it runs per batch).
# A generation key that is missing (never dropped, expired, or Redis flushed or restarted
# empty) starts from the server's clock in microseconds, not from 0: counting again from
# 0 would give old values anew, and a gateway's in-memory copy made under one of them
# (gateway.cache.local) would pass for current after the change that dropped it.
_DROP = """
for _, name in ipairs(KEYS) do
  if redis.call('EXISTS', name) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', name, string.format('%d', now[1] * 1000000 + now[2]))
  end
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


class ResponseCache:
    """Entries by scope and key, each generation of a scope dropped at once."""

    def __init__(
        self, redis: Redis, *, prefix: str, ttl: int, local: LocalEntries | None = None
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl
        self._drop = redis.register_script(_DROP)
        pool = redis.connection_pool
        self._reads = pool.connection_class(**pool.connection_kwargs)
        self._generations = GenerationReads(self._mget)
        # Without one given, a small layer (tests and tools); the gateway sizes it from settings.
        self._local = local or LocalEntries(entries=1_000, max_bytes=8 << 20, ttl=ttl)
        self._flights: SingleFlight[tuple[str, bytes, str], Any] = SingleFlight()
        # Scopes whose drop failed here (Redis slow or away), read through until their
        # entries have expired: otherwise a change could be hidden for a whole ttl.
        self._distrusted: dict[str, float] = {}
        # For /metrics and the tests: answers served (local_hits of them by this
        # process's copy), missed, read through.
        self.hits = 0
        self.local_hits = 0
        self.misses = 0
        self.fills = 0

    @property
    def generation_reads(self) -> int:
        """Round trips that read generations, each shared by the reads queued for it."""
        return self._generations.sent

    async def _mget(self, names: list[str]) -> list[bytes | None]:
        # Generation reads go one at a time (GenerationReads), so they have a connection
        # of their own and skip the pool, its lock and the client's retry wrapper: a
        # third of a hit's CPU before. Bytes: the pool's connections do not decode.
        try:
            await self._reads.send_command("MGET", *names)
            return cast(list[bytes | None], await self._reads.read_response())
        except BaseException:
            # An answer left half read would be taken for the next read's: start afresh.
            await self._reads.disconnect(nowait=True)
            raise

    def _generation(self, scope: str) -> str:
        return f"{self._prefix}g:{scope}"

    def _entry(self, scope: str, generation: bytes, key: str) -> str:
        return f"{self._prefix}e:{scope}:{generation.decode()}:{key}"

    async def fetch(self, scope: str, key: str, load: Callable[[], Awaitable[E]]) -> E:
        """The entry ``key`` of ``scope``, filled by ``load()`` on a miss (None: not kept)."""
        until = self._distrusted.get(scope)
        if until is not None:
            if time.monotonic() < until:
                return await load()
            del self._distrusted[scope]
        try:
            # Bounded: a Redis that hangs rather than refuses (no socket timeout on the
            # shared client) must not hold every public read of this gateway with it.
            async with asyncio.timeout(READ_SECONDS):
                generation = await self._generations.current(self._generation(scope))
                copy = self._local.get(scope, key, generation)
                if copy is not None:
                    self.hits += 1
                    self.local_hits += 1
                    return cast(E, copy)
                entry = cast(bytes | None,
                             await self._redis.get(self._entry(scope, generation, key)))
        except (RedisError, TimeoutError) as exc:
            log.warning("response cache unavailable; reading through", extra={"error": repr(exc)})
            return await load()
        if entry is not None:
            self.hits += 1
            self._local.put(scope, key, generation, entry)
            return cast(E, entry)
        self.misses += 1

        def keep(filled: bytes | None) -> None:
            if filled is not None:
                self._local.put(scope, key, generation, filled)

        filled: E = await self._flights.load(
            (scope, generation, key), lambda: self._fill(scope, generation, key, load), keep
        )
        return filled

    async def _fill(
        self, scope: str, generation: bytes, key: str, load: Callable[[], Awaitable[E]]
    ) -> E:
        self.fills += 1
        entry = await load()
        if entry is not None:
            try:
                await self._redis.set(self._entry(scope, generation, key), entry, ex=self._ttl)
            except RedisError as exc:
                log.warning("response cache fill failed", extra={"error": repr(exc)})
        return entry

    def distrust(self, scopes: Iterable[str]) -> None:
        """A drop of ``scopes`` failed: read them through here until what was cached expired.

        Twice the ttl: a fill under way when the drop failed writes its entry a little later.
        """
        scopes = set(scopes)
        until = time.monotonic() + 2 * self._ttl
        for scope in scopes:
            self._distrusted[scope] = until
        self._local.drop(scopes)

    async def drop(self, scopes: Iterable[str]) -> None:
        """Make every entry of ``scopes`` unreachable (one round trip for all of them)."""
        scopes = set(scopes)
        # Before the round trip: a copy is of no use once the drop may have landed.
        self._local.drop(scopes)
        names = [self._generation(scope) for scope in scopes]
        if names:
            await self._drop(keys=names, args=[GENERATION_SECONDS])

    async def aclose(self) -> None:
        """Stop the generation read under way and close its connection (shutdown)."""
        await self._generations.aclose()
        await self._reads.disconnect()
