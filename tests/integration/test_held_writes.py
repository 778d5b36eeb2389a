"""Held repository writes on the real MongoDB-wire server: one bulk_write, guards still hold."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from stores.mongo import HeldWrites, update_one, writes_held
from stores.orders import OrderRepository
from tests.integration.test_order_read_model import snapshot

pytestmark = pytest.mark.integration


async def test_held_writes_reach_the_server_only_when_flushed_and_lose_to_newer_versions(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    orders = OrderRepository(db)
    assert await orders.project(snapshot(3, "o-newer"))  # stored before: newer than held below

    held = HeldWrites()
    with writes_held(held):
        for n in range(5):
            await orders.project(snapshot(2, f"o-{n}"))
        await orders.project(snapshot(1, "o-newer"))  # a redelivered, older version
    assert len(held) == 6
    assert await orders.get("o-0") is None  # nothing written yet

    await held.flush()  # the guard's duplicate key on o-newer is expected, not an error

    for n in range(5):
        stored = await orders.get(f"o-{n}")
        assert stored is not None
        assert stored["version"] == 2
    newer = await orders.get("o-newer")
    assert newer is not None
    assert newer["version"] == 3


async def test_a_write_refused_for_another_reason_fails_the_flush(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    things = db["held-writes-test"]
    await things.insert_one({"_id": "x", "name": "a string"})
    held = HeldWrites()
    with writes_held(held):
        assert await update_one(things, {"_id": "y"}, {"$set": {"n": 1}}, upsert=True)
        assert await update_one(things, {"_id": "x"}, {"$inc": {"name": 1}})  # not a number

    with pytest.raises(BulkWriteError):
        await held.flush()
    assert await things.find_one({"_id": "y"}) == {"_id": "y", "n": 1}  # unordered: applied
