"""Expiring: fresh entries answer without a load, stale ones load again, the bound holds."""

from __future__ import annotations

import pytest

from stores.expiring import Expiring


class Loads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> int | None:
        self.count += 1
        return self.count


async def test_a_fresh_entry_is_not_loaded_again_and_a_stale_one_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("stores.expiring.time.monotonic", lambda: now[0])
    cache: Expiring[str, int | None] = Expiring(ttl=5.0, size=10)
    load = Loads()
    assert await cache.get("a", load) == 1
    now[0] += 4.9
    assert await cache.get("a", load) == 1
    now[0] += 0.2
    assert await cache.get("a", load) == 2


async def test_the_least_recently_used_entry_goes_first_and_keep_can_refuse() -> None:
    cache: Expiring[str, int | None] = Expiring(ttl=60.0, size=2)
    load = Loads()
    await cache.get("a", load)
    await cache.get("b", load)
    await cache.get("a", load)  # a is now the most recent
    await cache.get("c", load)  # b goes
    assert load.count == 3
    assert await cache.get("a", load) == 1
    assert await cache.get("b", load) == 4

    refused = Loads()
    assert await cache.get("x", refused, keep=lambda v: False) == 1
    assert await cache.get("x", refused, keep=lambda v: False) == 2
