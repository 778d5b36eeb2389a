"""The orders read model, written only by the order saga (version-guarded upserts).

Document: ``{_id: orderId, buyerId, sellerIds, status, items: [{productId,
sellerId, quantity, unitPrice, currency}], total, currency, payment: {status,
provider, reference}, history: [{status, at, reason?}], deadline: {step, at} |
null, createdAt, updatedAt, version}``; money as decimal strings, times as BSON
dates. ``deadline`` is what the saga awaits and until when; an order past it, or
with a failed refund, is *stuck* (the rule of ``agents.saga.recovery``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.keyset import keyset_after
from streams.envelope import format_time

COLLECTION = "orders"
Role = Literal["buyer", "seller"]
INDEXES = {
    COLLECTION: [
        IndexModel([("buyerId", 1), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                   name="by_buyer_newest"),
        IndexModel([("sellerIds", 1), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                   name="by_seller_newest"),
        # The catalog's "did this buyer purchase it" review check.
        IndexModel([("buyerId", 1), ("items.productId", 1), ("status", 1)],
                   name="purchases"),
        # The admins' stuck list: the two halves of its $or.
        IndexModel([("deadline.at", 1)], name="by_deadline"),
        IndexModel([("payment.status", 1)], name="by_payment_status"),
        IndexModel([("createdAt", DESCENDING), ("_id", DESCENDING)], name="newest"),
    ],
}
_PARTY = {"buyer": "buyerId", "seller": "sellerIds"}


class OrderRepository:
    """Intention-revealing access to the ``orders`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._orders = db[COLLECTION]

    async def project(self, doc: dict[str, Any]) -> bool:
        """Write ``doc`` unless a same-or-newer version is stored; True if it was written."""
        fields = {k: v for k, v in doc.items() if k != "_id"}
        try:
            result = await self._orders.update_one(
                {"_id": doc["_id"], "version": {"$lt": doc["version"]}},
                {"$set": fields},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the stored version is newer: a redelivery or an older snapshot
        return result.upserted_id is not None or result.modified_count > 0

    async def get(self, order_id: str) -> dict[str, Any] | None:
        """The order document, if projected."""
        return await self._orders.find_one({"_id": order_id})

    async def parties(self, order_id: str) -> tuple[str, list[str]] | None:
        """``(buyerId, sellerIds)`` of an order, for access checks."""
        doc = await self._orders.find_one({"_id": order_id}, {"buyerId": 1, "sellerIds": 1})
        if doc is None:
            return None
        return str(doc["buyerId"]), [str(s) for s in doc.get("sellerIds", [])]

    async def page(
        self,
        user_id: str,
        *,
        role: Role,
        limit: int,
        status: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` of the user's orders (as buyer or seller), newest first."""
        query: dict[str, Any] = {_PARTY[role]: user_id}
        if status is not None:
            query["status"] = status
        return await self._newest(query, limit, after)

    async def admin_page(
        self,
        *,
        limit: int,
        stuck_at: datetime | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` orders of anyone, newest first; with ``stuck_at``, those stuck then."""
        query: dict[str, Any] = {}
        if stuck_at is not None:
            query = {"$or": [{"deadline.at": {"$lte": stuck_at}},
                             {"payment.status": "refund_failed"}]}
        return await self._newest(query, limit, after)

    async def _newest(
        self, query: dict[str, Any], limit: int, after: tuple[datetime, str] | None
    ) -> list[dict[str, Any]]:
        if after is not None:
            # Both may be an $or: combine them, never merge their keys.
            seek = keyset_after("createdAt", after)
            query = {"$and": [query, seek]} if query else seek
        cursor = self._orders.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        return list(await cursor.limit(limit).to_list())


def stuck_reason(doc: dict[str, Any], now: datetime) -> str | None:
    """Why the order is stuck as of ``now`` (None if it is not): see ``agents.saga.recovery``."""
    if doc["payment"]["status"] == "refund_failed":
        return "refund_failed"
    deadline = doc.get("deadline")
    if deadline is not None and _aware(deadline["at"]) <= now:
        return "deadline_passed"
    return None


def _aware(moment: datetime) -> datetime:
    # BSON dates come back naive (UTC) unless the client is tz_aware.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def order_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API's order object."""
    return {
        "orderId": doc["_id"],
        "buyerId": doc["buyerId"],
        "status": doc["status"],
        "items": [dict(item) for item in doc["items"]],
        "total": doc["total"],
        "currency": doc["currency"],
        "payment": dict(doc["payment"]),
        "history": [_history_json(h) for h in doc["history"]],
        "createdAt": format_time(doc["createdAt"]),
        "updatedAt": format_time(doc["updatedAt"]),
    }


def _history_json(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"status": entry["status"], "at": format_time(entry["at"])}
    if entry.get("reason"):
        out["reason"] = entry["reason"]
    return out
