"""Read-only lookups of the catalog's ``products`` read model, for pricing and delivery.

The catalog agent owns that collection; orders only read the few fields they
need (seller, price, currency, status, files), so this is not a second writer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "products"
UNAVAILABLE = frozenset({"archived", "deleted"})
_FIELDS = {"sellerId": 1, "name": 1, "price": 1, "currency": 1, "status": 1, "fileIds": 1}


@dataclasses.dataclass(frozen=True, slots=True)
class ProductView:
    """What an order needs to know about one product."""

    product_id: str
    seller_id: str
    price: Decimal
    currency: str
    status: str
    file_ids: tuple[str, ...]
    name: str = ""

    @property
    def available(self) -> bool:
        """Whether the product can still be ordered."""
        return self.status not in UNAVAILABLE


class ProductLookup:
    """Batch reads of products by id."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._products = db[COLLECTION]

    async def many(self, product_ids: Iterable[str]) -> dict[str, ProductView]:
        """The products that exist among ``product_ids``, by id (one round trip)."""
        wanted = sorted(set(product_ids))
        found: dict[str, ProductView] = {}
        async for doc in self._products.find({"_id": {"$in": wanted}}, _FIELDS):
            view = _view(doc)
            if view is not None:
                found[view.product_id] = view
        return found


def _view(doc: dict[str, Any]) -> ProductView | None:
    try:
        price = Decimal(str(doc["price"]))
    except (KeyError, InvalidOperation):
        return None  # a half-projected product cannot be priced; treat it as unknown
    return ProductView(
        product_id=str(doc["_id"]),
        seller_id=str(doc.get("sellerId", "")),
        price=price,
        currency=str(doc.get("currency", "")),
        status=str(doc.get("status", "active")),
        file_ids=tuple(str(f) for f in doc.get("fileIds") or ()),
        name=str(doc.get("name", "")),
    )
