"""Single-flight loads, and the revocation cache built on them (no Redis: a slow stand-in)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from gateway.http.revocation import Revocations
from gateway.runtime.singleflight import SingleFlight


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_share_one_load_and_its_error() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()
    calls = 0
    kept: list[int] = []

    async def load() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise LookupError("gone")

    waiting = [asyncio.ensure_future(flight.load("k", load, kept.append)) for _ in range(10)]
    await _settle()
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, LookupError) for r in results)
    assert kept == []  # nothing kept
    assert len(flight) == 0  # and the next load starts afresh


async def test_forget_drops_the_result_under_way() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()
    kept: list[int] = []
    values = iter((1, 2))

    async def load() -> int:
        value = next(values)
        await gate.wait()
        return value

    first = asyncio.ensure_future(flight.load("k", load, kept.append))
    await _settle()
    flight.forget("k")
    second = asyncio.ensure_future(flight.load("k", load, kept.append))
    await _settle()
    gate.set()
    assert (await first, await second) == (1, 2)
    assert kept == [2]


class SlowRedis:
    """``get`` answers what was set when it was called, once ``release`` is set."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.release = asyncio.Event()
        self.gets = 0

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        value = self.values.get(key)
        await self.release.wait()
        return None if value is None else str(value).encode()

    async def set(self, key: str, value: int, **_: Any) -> None:
        self.values[key] = value


@pytest.fixture
def redis() -> SlowRedis:
    return SlowRedis()


async def test_a_read_older_than_a_revoke_does_not_undo_it(redis: SlowRedis) -> None:
    revocations = Revocations(cast(Redis, redis), prefix="t:", retain_seconds=900)
    readers = [asyncio.ensure_future(revocations.not_before("ada")) for _ in range(20)]
    await _settle()
    revoked_at = await revocations.revoke("ada")  # while the read of "never" is under way
    redis.release.set()
    assert await asyncio.gather(*readers) == [0] * 20  # they asked before the revoke
    assert redis.gets == 1
    assert revocations.cached("ada") == revoked_at
