"""The orders read model, written only by the order saga (version-guarded upserts).

Document: ``{_id: orderId, buyerId, sellerIds, status, items: [{productId,
sellerId, quantity, unitPrice, currency}], total, currency, payment: {status,
provider, reference}, history: [{status, at, reason?}], deadline: {step, at} |
null, createdAt, updatedAt, version, stuckFrom?}``; money as decimal strings, times
as BSON dates. ``deadline`` is what the saga awaits and until when; an order past it,
or with a failed refund, is *stuck* (the rule of ``agents.saga.recovery``).
``stuckFrom`` is derived here, not by the saga: when the order becomes stuck
(the deadline, or the epoch for a failed refund), absent when neither applies.

Indexes: each one costs the MongoDB-wire server about 0.1 ms on *every* update of
the document, whichever fields change (``bench.mongo_writes``), and the saga
writes each order several times; so only what a query walks is indexed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from stores import mongo
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
        # The admins' list of everyone's orders, walked in its sort order.
        IndexModel([("createdAt", DESCENDING), ("_id", DESCENDING)], name="newest"),
        # The admins' stuck list: one range on the derived field instead of an $or over
        # two indexes. Sparse: settled orders carry no entry.
        IndexModel([("stuckFrom", 1)], name="by_stuck_from", sparse=True),
        # No index for the catalog's "did this buyer purchase it" review check: by_buyer_newest
        # narrows it to one buyer's orders, and it runs once per review, not per order write.
    ],
}
# Indexes earlier releases declared: ensure_indexes drops them from existing databases,
# or every order write would keep paying for them there.
RETIRED_INDEXES = {COLLECTION: ["purchases", "by_deadline", "by_payment_status"]}
STUCK_FIELD = "stuckFrom"
# A failed refund is stuck from the start: any "now" is past this.
_ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)
_PARTY = {"buyer": "buyerId", "seller": "sellerIds"}


class OrderRepository:
    """Intention-revealing access to the ``orders`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._orders = db[COLLECTION]

    async def project(self, doc: dict[str, Any]) -> bool:
        """Write ``doc`` unless a same-or-newer version is stored; True if it was written."""
        fields = {k: v for k, v in doc.items() if k not in ("_id", STUCK_FIELD)}
        stuck_from = _stuck_from(doc)
        update: dict[str, Any] = {"$set": fields}
        if stuck_from is None:
            update["$unset"] = {STUCK_FIELD: ""}
        else:
            fields[STUCK_FIELD] = stuck_from
        # A stored same-or-newer version (a redelivery, an older snapshot) is left as it is.
        return await mongo.update_one(
            self._orders, {"_id": doc["_id"], "version": {"$lt": doc["version"]}}, update,
            upsert=True,
        )

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
            query = {STUCK_FIELD: {"$lte": stuck_at}}
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


def _stuck_from(doc: dict[str, Any]) -> datetime | None:
    """When ``doc`` becomes stuck by ``stuck_reason``'s rule, if it can."""
    if doc["payment"]["status"] == "refund_failed":
        return _ALWAYS
    deadline = doc.get("deadline")
    return None if deadline is None else _aware(deadline["at"])


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
