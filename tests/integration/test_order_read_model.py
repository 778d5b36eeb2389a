"""The orders read model's version guard and the saga's email lookup, on the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.mongo import ensure_indexes
from stores.orders import OrderRepository
from stores.users import UserRepository

pytestmark = pytest.mark.integration
PLACED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STEPS = ["pending", "stock_reserved", "paid", "delivered", "completed"]


def snapshot(version: int, order_id: str = "o-guard") -> dict[str, Any]:
    """The read model at ``version``: one more history entry per version."""
    history = [{"status": s, "at": PLACED + timedelta(seconds=i)}
               for i, s in enumerate(STEPS[:version])]
    return {
        "_id": order_id, "buyerId": "b", "sellerIds": ["s"], "status": history[-1]["status"],
        "items": [{"productId": "p", "sellerId": "s", "quantity": 1, "unitPrice": "5.00",
                   "currency": "USD"}],
        "total": "5.00", "currency": "USD",
        "payment": {"status": "captured" if version > 2 else "none", "provider": None,
                    "reference": None},
        "history": history, "createdAt": PLACED, "updatedAt": history[-1]["at"],
        "version": version,
    }


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    database = mongo[settings.mongo_database]
    await ensure_indexes(database)
    try:
        yield database
    finally:
        await mongo.drop_database(settings.mongo_database)
        await mongo.close()


async def test_versions_apply_in_order_and_replays_change_nothing(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    orders = OrderRepository(db)
    assert await orders.project(snapshot(1))
    assert await orders.project(snapshot(2))
    assert not await orders.project(snapshot(2))  # redelivered
    assert not await orders.project(snapshot(1))  # an older one, late
    assert await orders.project(snapshot(4))  # a version skipped in between
    assert not await orders.project(snapshot(3))

    stored = await orders.get("o-guard")
    expected = snapshot(4)
    assert stored is not None
    assert {k: stored[k] for k in expected} == expected


async def test_a_later_version_without_the_first_writes_the_whole_document(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    orders = OrderRepository(db)
    assert await orders.project(snapshot(3, "o-late"))
    assert not await orders.project(snapshot(1, "o-late"))

    stored = await orders.get("o-late")
    expected = snapshot(3, "o-late")
    assert stored is not None
    assert {k: stored[k] for k in expected} == expected


async def test_emails_of_many_users_in_one_lookup(db: AsyncDatabase[dict[str, Any]]) -> None:
    for user_id in ("u1", "u2"):
        await db["users"].insert_one({"_id": user_id, "email": f"{user_id}@example.com",
                                      "emailNormalized": f"{user_id}@example.com",
                                      "passwordHash": "x"})

    emails = await UserRepository(db).emails(["u2", "u1", "u2", "missing"])

    assert emails == {"u1": "u1@example.com", "u2": "u2@example.com"}
