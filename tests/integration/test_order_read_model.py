"""The orders read model's version guard and the saga's email lookup, on the real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from stores.mongo import ensure_indexes
from stores.orders import RETIRED_INDEXES, OrderRepository
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


def in_flight(order_id: str, *, deadline: datetime | None, payment: str = "none",
              version: int = 2) -> dict[str, Any]:
    """``snapshot(version)`` awaiting a step until ``deadline`` with that payment status."""
    doc = snapshot(version, order_id)
    doc["deadline"] = None if deadline is None else {"step": "charge", "at": deadline}
    doc["payment"] = {**doc["payment"], "status": payment}
    return doc


async def test_the_stuck_list_is_one_range_on_a_field_derived_at_projection(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    orders = OrderRepository(db)
    now = PLACED + timedelta(hours=1)
    assert await orders.project(in_flight("o-overdue", deadline=now - timedelta(seconds=1)))
    assert await orders.project(in_flight("o-waiting", deadline=now + timedelta(minutes=5)))
    assert await orders.project(in_flight("o-refund", deadline=None, payment="refund_failed"))
    assert await orders.project(in_flight("o-settled", deadline=None, payment="captured"))
    # Overdue, then settled by a later version: no longer stuck.
    assert await orders.project(in_flight("o-moved", deadline=now - timedelta(minutes=1)))
    assert await orders.project(in_flight("o-moved", deadline=None, version=3))

    stuck = await orders.admin_page(limit=10, stuck_at=now)

    assert sorted(doc["_id"] for doc in stuck) == ["o-overdue", "o-refund"]
    moved = await orders.get("o-moved")
    assert moved is not None
    assert "stuckFrom" not in moved


async def test_ensure_indexes_drops_the_indexes_orders_retired(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    # A database an earlier release indexed: the review check's own index, among others.
    await db["orders"].create_indexes([IndexModel(
        [("buyerId", 1), ("items.productId", 1), ("status", 1)], name="purchases")])

    await ensure_indexes(db)

    names = {index["name"] for index in await (await db["orders"].list_indexes()).to_list()}
    assert names.isdisjoint(RETIRED_INDEXES["orders"])
    assert {"by_buyer_newest", "by_seller_newest", "newest", "by_stuck_from"} <= names


async def test_emails_of_many_users_in_one_lookup(db: AsyncDatabase[dict[str, Any]]) -> None:
    for user_id in ("u1", "u2"):
        await db["users"].insert_one({"_id": user_id, "email": f"{user_id}@example.com",
                                      "emailNormalized": f"{user_id}@example.com",
                                      "passwordHash": "x"})

    emails = await UserRepository(db).emails(["u2", "u1", "u2", "missing"])

    assert emails == {"u1": "u1@example.com", "u2": "u2@example.com"}
