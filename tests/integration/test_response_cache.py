"""The response cache over the embedded Redis: generations, racing fills, Redis away."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from config import Settings
from gateway.cache.install import scopes_of
from gateway.cache.store import (
    LISTINGS,
    READ_SECONDS,
    ResponseCache,
    pack,
    product_scope,
    unpack,
)
from mercato._procs import free_port
from stores.redisdb import redis_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the embedded Redis; the test's keys are under its own app id."""
    client = redis_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


Make = Callable[[Redis], ResponseCache]


@pytest.fixture
async def make(settings: Settings) -> AsyncIterator[Make]:
    """Caches under the test's app id, each closed (its own connection too) at the end."""
    made: list[ResponseCache] = []

    def cache(redis: Redis) -> ResponseCache:
        made.append(ResponseCache(redis, prefix=f"{settings.app_id}:rc:", ttl=30))
        return made[-1]

    try:
        yield cache
    finally:
        for one in made:
            await one.aclose()


async def test_an_entry_is_served_until_its_scope_is_dropped(
    redis: Redis, make: Make
) -> None:
    cache = make(redis)
    versions = iter([b"v1", b"v2"])

    async def load() -> bytes:
        return next(versions)

    scope = product_scope("p1")
    assert await cache.fetch(scope, "k", load) == b"v1"
    assert await cache.fetch(scope, "k", load) == b"v1"
    assert (cache.hits, cache.fills) == (1, 1)
    await cache.drop({scope})
    assert await cache.fetch(scope, "k", load) == b"v2"
    # Another gateway's cache: the same entries.
    assert await make(redis).fetch(scope, "k", load) == b"v2"


async def test_a_fill_that_raced_a_change_is_never_served_after_it(
    redis: Redis, make: Make
) -> None:
    cache = make(redis)
    scope = product_scope("p2")
    read_old = asyncio.Event()
    dropped = asyncio.Event()

    async def slow_old_read() -> bytes:
        read_old.set()
        await dropped.wait()  # the change lands, and is dropped, while this read is out
        return b"old"

    async def fresh_read() -> bytes:
        return b"new"

    racing = asyncio.ensure_future(cache.fetch(scope, "k", slow_old_read))
    await read_old.wait()
    await cache.drop({scope})
    dropped.set()
    assert await racing == b"old"  # its caller asked before the change
    assert await cache.fetch(scope, "k", fresh_read) == b"new"
    assert await cache.fetch(scope, "k", slow_old_read) == b"new"


async def test_nothing_kept_for_a_missing_answer(redis: Redis, make: Make) -> None:
    cache = make(redis)
    calls = 0

    async def missing() -> bytes | None:
        nonlocal calls
        calls += 1
        return None

    assert await cache.fetch(LISTINGS, "gone", missing) is None
    assert await cache.fetch(LISTINGS, "gone", missing) is None
    assert calls == 2


async def test_redis_away_reads_through(settings: Settings, make: Make) -> None:
    away = redis_client(
        dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        socket_timeout=0.5,
    )
    try:
        cache = make(away)

        async def load() -> bytes:
            return b"from the read model"

        assert await cache.fetch(LISTINGS, "k", load) == b"from the read model"
    finally:
        await away.aclose()


async def test_a_redis_that_hangs_holds_a_read_no_longer_than_the_bound(
    settings: Settings, make: Make
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts, reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = redis_client(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        cache = make(hung)

        async def load() -> bytes:
            return b"from the read model"

        # The outer bound only keeps a regression from hanging the suite.
        async with asyncio.timeout(READ_SECONDS * 10):
            assert await cache.fetch(LISTINGS, "k", load) == b"from the read model"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await hung.aclose()


def test_entries_pack_their_etag_and_product_records_name_their_scopes() -> None:
    assert unpack(pack('"abc-1"', b'{"a":\n1}')) == ('"abc-1"', b'{"a":\n1}')
    assert scopes_of(frozenset({"product:p1", "user:u1", "order:o1"})) == {
        LISTINGS, product_scope("p1")
    }
    assert scopes_of(frozenset({"user:u1"})) == set()


async def test_a_scope_whose_drop_failed_is_read_through_here_until_its_entries_expired(
    redis: Redis, make: Make
) -> None:
    cache = make(redis)
    versions = iter([b"v1", b"v2", b"v3"])

    async def load() -> bytes:
        return next(versions)

    scope = product_scope("p-distrusted")
    assert await cache.fetch(scope, "k", load) == b"v1"
    cache.distrust({scope})  # its drop timed out: the shared entry may be stale
    assert await cache.fetch(scope, "k", load) == b"v2"
    assert await cache.fetch(scope, "k", load) == b"v3"
    assert cache.hits == 0
    # Other scopes are served as before.
    other = product_scope("p-other")
    assert await cache.fetch(other, "k", load_other) == b"o"
    assert await cache.fetch(other, "k", load_other) == b"o"
    assert cache.hits == 1


async def load_other() -> bytes:
    return b"o"


async def test_a_copy_in_memory_answers_only_while_redis_says_its_generation_is_current(
    redis: Redis, make: Make
) -> None:
    here = make(redis)
    elsewhere = make(redis)  # another gateway: its own memory, the same Redis
    versions = iter([b"v1", b"v2"])

    async def load() -> bytes:
        return next(versions)

    scope = product_scope("p-local")
    assert await here.fetch(scope, "k", load) == b"v1"
    assert await here.fetch(scope, "k", load) == b"v1"
    assert (here.hits, here.local_hits) == (1, 1)
    # The other gateway drops (its PATCH): no push record reached this one, yet the very
    # next read here checks the generation first and so misses its own copy.
    await elsewhere.drop({scope})
    assert await here.fetch(scope, "k", load) == b"v2"
    assert (here.hits, here.fills) == (1, 2)
    # The other gateway reads the entry this one filled, then from its own memory.
    assert await elsewhere.fetch(scope, "k", load) == b"v2"
    assert await elsewhere.fetch(scope, "k", load) == b"v2"
    assert (elsewhere.hits, elsewhere.local_hits, elsewhere.fills) == (2, 1, 0)


async def test_a_flushed_redis_never_makes_an_old_copy_in_memory_current_again(
    redis: Redis, make: Make, settings: Settings
) -> None:
    here = make(redis)
    elsewhere = make(redis)
    versions = iter([b"v1", b"v2", b"v3"])

    async def load() -> bytes:
        return next(versions)

    scope = product_scope("p-flushed")
    assert await here.fetch(scope, "k", load) == b"v1"
    await elsewhere.drop({scope})  # a change: the scope's first generation
    assert await here.fetch(scope, "k", load) == b"v2"  # kept in memory here
    # Redis loses everything (flushed, or restarted without its data); only this test's
    # keys, since other tests share the server. Then the next change drops the scope.
    keys = [key async for key in redis.scan_iter(match=f"{settings.app_id}:rc:*")]
    assert keys
    await redis.delete(*keys)
    await elsewhere.drop({scope})
    # A generation counted again from 0 would be the first one again and name v2 here.
    assert await here.fetch(scope, "k", load) == b"v3"


async def test_concurrent_hits_share_one_generation_read(
    redis: Redis, make: Make
) -> None:
    cache = make(redis)

    async def load() -> bytes:
        return b"v"

    scope = product_scope("p-busy")
    assert await cache.fetch(scope, "k", load) == b"v"
    before = cache.generation_reads
    answers = await asyncio.gather(*(cache.fetch(scope, "k", load) for _ in range(50)))
    assert answers == [b"v"] * 50
    assert cache.local_hits == 50
    assert cache.generation_reads == before + 1  # one round trip for all fifty


async def test_redis_away_serves_no_copy(settings: Settings, make: Make) -> None:
    away = redis_client(
        dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        socket_timeout=0.5,
    )
    try:
        cache = make(away)
        reads = 0

        async def load() -> bytes:
            nonlocal reads
            reads += 1
            return b"from the read model"

        for _ in range(2):  # nothing could say a copy is current: both read through
            assert await cache.fetch(LISTINGS, "k", load) == b"from the read model"
        assert (reads, cache.local_hits) == (2, 0)
    finally:
        await away.aclose()
