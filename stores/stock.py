"""The stock read model: each product's public stock, in a collection of its own.

Document: ``{_id: productId, stock, position, sequence?}``, written by the catalog's stock
projector from the inventory agent's ``stock_changed`` records. It is not a field
of the product document because the MongoDB-wire server rewrites every index of a
document on every update (``bench.mongo_writes``): on ``products`` that is five
indexes, one of them multikey over the search terms, for each order's stock
change. Here only ``_id`` is indexed. Readers join it onto the products they
serve (``ProductRepository``), one lookup per product or per page.

``sequence`` numbers the product's stock changes in the order the inventory decided
them, and the highest applied wins, so a change sent again (or late) changes nothing.
Changes from before the numbering carry only ``position``, the inventory record's offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from stores import mongo

COLLECTION = "stock"


class StockLevels:
    """Guarded writes and batch reads of the ``stock`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._stock = db[COLLECTION]

    async def apply(
        self, product_id: str, *, stock: int, position: int, sequence: int | None = None
    ) -> bool:
        """Set ``stock`` from the change numbered ``sequence`` unless a later one applied.

        The inventory numbers each product's changes as it decides them; a change sent again
        later (its command came again) lands at a later ``position`` with its old level, so
        only the number orders them. A change from before numbering is ordered by position,
        and never overrides a numbered one.
        """
        if sequence is None:
            query: dict[str, Any] = {"_id": product_id, "sequence": {"$exists": False},
                                     "position": {"$not": {"$gte": position}}}
            fields: dict[str, Any] = {"stock": stock, "position": position}
        else:
            query = {"_id": product_id, "sequence": {"$not": {"$gte": sequence}}}
            fields = {"stock": stock, "position": position, "sequence": sequence}
        # A row the guard excludes is left as it is (the upsert's duplicate key is expected).
        return await mongo.update_one(self._stock, query, {"$set": fields}, upsert=True)

    async def many(self, product_ids: Iterable[str]) -> dict[str, int]:
        """The stock of each of ``product_ids`` that has one (one round trip)."""
        wanted = sorted(set(product_ids))
        if not wanted:
            return {}
        cursor = self._stock.find({"_id": {"$in": wanted}}, {"stock": 1})
        return {str(doc["_id"]): int(doc["stock"]) async for doc in cursor}
