"""The stock read model: each product's public stock, in a collection of its own.

Document: ``{_id: productId, stock, position}``, written by the catalog's stock
projector from the inventory agent's ``stock_changed`` records. It is not a field
of the product document because the MongoDB-wire server rewrites every index of a
document on every update (``bench.mongo_writes``): on ``products`` that is five
indexes, one of them multikey over the search terms, for each order's stock
change. Here only ``_id`` is indexed. Readers join it onto the products they
serve (``ProductRepository``), one lookup per product or per page.

``position`` is the inventory record's offset: the last writer by offset wins,
so a redelivered or older record changes nothing.
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

    async def apply(self, product_id: str, *, stock: int, position: int) -> bool:
        """Set ``stock`` from the record at ``position`` unless a later one applied."""
        # A row holding a later (or the same) position is left as it is. Held and flushed
        # with other records' writes when the agent runtime holds writes.
        return await mongo.update_one(
            self._stock,
            {"_id": product_id, "position": {"$not": {"$gte": position}}},
            {"$set": {"stock": stock, "position": position}},
            upsert=True,
        )

    async def many(self, product_ids: Iterable[str]) -> dict[str, int]:
        """The stock of each of ``product_ids`` that has one (one round trip)."""
        wanted = sorted(set(product_ids))
        if not wanted:
            return {}
        cursor = self._stock.find({"_id": {"$in": wanted}}, {"stock": 1})
        return {str(doc["_id"]): int(doc["stock"]) async for doc in cursor}
