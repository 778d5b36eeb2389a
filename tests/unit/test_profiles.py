"""The profile cache: one MongoDB read per user however many requests miss at once."""

from __future__ import annotations

import asyncio
import datetime

import orjson
import pytest

from gateway.identity.profiles import ProfileCache
from stores.users import User, UserRepository

ADA = User("ada", "ada@example.com", "Ada", ("buyer",),
           datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC))


class SlowUsers(UserRepository):
    """Answers ``by_id`` when ``release`` is set, counting the reads."""

    def __init__(self) -> None:
        self.user: User | None = ADA
        self.reads = 0
        self.release = asyncio.Event()
        self.failure: Exception | None = None

    async def by_id(self, user_id: str) -> User | None:
        self.reads += 1
        user = self.user
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return user


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_read() -> None:
    users = SlowUsers()
    cache = ProfileCache(users)
    waiting = [asyncio.create_task(cache.body("ada")) for _ in range(50)]
    await _settle()
    users.release.set()
    bodies = await asyncio.gather(*waiting)
    assert users.reads == 1
    assert {b for b in bodies} == {orjson.dumps(ADA.to_json())}
    assert cache.cached("ada") == bodies[0]


async def test_a_read_started_before_a_change_is_not_kept() -> None:
    users = SlowUsers()
    cache = ProfileCache(users)
    before = asyncio.create_task(cache.body("ada"))
    await _settle()
    cache.invalidate("ada")  # the profile changed through this gateway meanwhile
    users.user = User("ada", "ada@example.com", "Ada L.", ("buyer",), ADA.created_at)
    after = asyncio.create_task(cache.body("ada"))  # must not join the older read
    await _settle()
    users.release.set()
    assert orjson.loads(await before or b"{}")["name"] == "Ada"
    assert orjson.loads(await after or b"{}")["name"] == "Ada L."
    assert users.reads == 2
    assert orjson.loads(cache.cached("ada") or b"{}")["name"] == "Ada L."


async def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    users = SlowUsers()
    cache = ProfileCache(users)
    leaving = asyncio.create_task(cache.body("ada"))
    staying = asyncio.create_task(cache.body("ada"))
    await _settle()
    leaving.cancel()
    await _settle()
    users.release.set()
    assert await staying == orjson.dumps(ADA.to_json())
    assert leaving.cancelled()


async def test_misses_and_failures_are_not_cached() -> None:
    users = SlowUsers()
    users.release.set()
    cache = ProfileCache(users)
    users.user = None
    assert await cache.body("ada") is None
    users.user = ADA
    users.failure = ConnectionError("mongo went away")
    with pytest.raises(ConnectionError):
        await cache.body("ada")
    users.failure = None
    assert await cache.body("ada") == orjson.dumps(ADA.to_json())
    assert users.reads == 3
