"""Quota reservations of uploads in flight, in the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from config import Settings
from gateway.files.quota import UploadReservations

pytestmark = pytest.mark.integration
NOW = 1_800_000_000_000  # ms


@pytest.fixture
async def reservations(settings: Settings) -> AsyncIterator[UploadReservations]:
    redis = Redis.from_url(settings.redis_url)
    try:
        yield UploadReservations(redis, prefix=f"t-{uuid.uuid4().hex}:", hold_seconds=60)
    finally:
        await redis.aclose()


async def test_uploads_in_flight_share_what_is_available(
    reservations: UploadReservations,
) -> None:
    assert await reservations.reserve("ada", "u1", wanted=6, available=8, now_ms=NOW) == 6
    assert await reservations.reserve("ada", "u2", wanted=6, available=8, now_ms=NOW) == 2
    assert await reservations.reserve("ada", "u3", wanted=1, available=8, now_ms=NOW) == 0
    assert await reservations.reserve("bob", "u4", wanted=6, available=8, now_ms=NOW) == 6
    # Asking again for the same upload does not count its own reservation against it.
    assert await reservations.reserve("ada", "u2", wanted=2, available=8, now_ms=NOW) == 2
    await reservations.release("ada", "u1")
    assert await reservations.reserve("ada", "u3", wanted=5, available=8, now_ms=NOW) == 5


async def test_a_reservation_nobody_released_expires(reservations: UploadReservations) -> None:
    assert await reservations.reserve("ada", "crashed", wanted=8, available=8, now_ms=NOW) == 8
    assert await reservations.reserve("ada", "next", wanted=8, available=8, now_ms=NOW) == 0
    later = NOW + 60_000 + 1
    assert await reservations.reserve("ada", "next", wanted=8, available=8, now_ms=later) == 8
