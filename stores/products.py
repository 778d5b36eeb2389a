"""The products read model: catalog fields (catalog agent), stock and rating projections.

Two agents write disjoint fields of one document, each behind its own guard, so
either may run first or be re-applied: catalog fields by ``version``, ``rating``
by the review count. Stock lives apart, in ``stores.stock`` (an update here
rewrites every index below), and is joined onto every product served here.

Prices are kept twice: the decimal string the API shows, and ``priceMicros``
(integer millionths of the currency unit) for filtering and sorting, because
decimal strings do not compare numerically. An integer is exact, indexes and
sorts natively on every MongoDB-wire server and round-trips through JSON
cursors, which Decimal128 does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.product_listing import Listing, pipeline
from stores.search import ALL_FIELD, search_fields
from stores.stock import StockLevels
from streams.envelope import format_time

COLLECTION = "products"
MICROS = Decimal(10**6)
INDEXES = {
    COLLECTION: [
        IndexModel([("status", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                   name="status_created"),
        IndexModel([("status", ASCENDING), ("priceMicros", ASCENDING), ("_id", ASCENDING)],
                   name="status_price"),
        IndexModel([("sellerId", ASCENDING), ("createdAt", DESCENDING)], name="seller_created"),
        IndexModel([("categoryKey", ASCENDING), ("createdAt", DESCENDING)],
                   name="category_created"),
        IndexModel([(ALL_FIELD, ASCENDING)], name="search_terms"),
    ],
}
_NEW_RATING = {"average": 0.0, "count": 0}


def to_micros(price: Decimal) -> int:
    """``price`` in integer millionths; exact for the at most 6 decimals the API accepts."""
    return int(price * MICROS)


def etag(product_id: str, version: int) -> str:
    """The strong entity tag of one version of a product (quoted, opaque)."""
    digest = hashlib.sha256(f"{product_id}:{version}".encode()).hexdigest()[:20]
    return f'"{digest}"'


def shown_etag(tag: str, stock: int, rating: dict[str, Any]) -> str:
    """The entity tag of a product as a read shows it: ``"<version tag>-<state>"``.

    Stock and rating change without a new catalog version (other agents own them), so a
    tag of the version alone would answer 304 to a copy with an old stock. The part
    before ``-`` is ``tag``, the version's, which ``If-Match`` compares (``version_tag``).
    """
    state = hashlib.sha256(
        f"{stock}:{float(rating['average'])!r}:{int(rating['count'])}".encode()
    ).hexdigest()[:8]
    return f"{tag[:-1]}-{state}\""


def version_tag(tag: str) -> str:
    """The version part of a tag ``shown_etag`` made (other tags as they are)."""
    if tag.endswith('"') and "-" in tag:
        return tag[: tag.rindex("-")] + '"'
    return tag


def category_key(category: str) -> str:
    """Categories filter case-insensitively."""
    return " ".join(category.casefold().split())


@dataclasses.dataclass(frozen=True, slots=True)
class Product:
    """A product as the API shows it."""

    product_id: str
    seller_id: str
    name: str
    description: str
    category: str
    price: str
    currency: str
    stock: int
    status: str
    file_ids: tuple[str, ...]
    rating_average: float
    rating_count: int
    created_at: datetime
    updated_at: datetime
    version: int

    @property
    def etag(self) -> str:
        """The entity tag of this version as shown (``shown_etag``)."""
        rating = {"average": self.rating_average, "count": self.rating_count}
        return shown_etag(etag(self.product_id, self.version), self.stock, rating)

    def to_json(self) -> dict[str, Any]:
        """The contract's product object."""
        return {
            "productId": self.product_id,
            "sellerId": self.seller_id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "stock": self.stock,
            "status": self.status,
            "fileIds": list(self.file_ids),
            "rating": {"average": self.rating_average, "count": self.rating_count},
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        }


class ProductRepository:
    """Intention-revealing access to the ``products`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._products = db[COLLECTION]
        self._stock = StockLevels(db)

    async def project(self, facts: dict[str, Any]) -> bool:
        """Write the catalog fields of ``facts`` (a ProductFacts dict) unless already newer.

        Returns whether this call wrote; a replayed or late version matches nothing.
        """
        version: int = facts["version"]
        price = Decimal(facts["price"])
        fields = {
            "sellerId": facts["sellerId"],
            "name": facts["name"],
            "nameKey": facts["name"].casefold(),
            "description": facts["description"],
            "category": facts["category"],
            "categoryKey": category_key(facts["category"]),
            "price": facts["price"],
            "priceMicros": to_micros(price),
            "currency": facts["currency"],
            "status": facts["status"],
            "fileIds": list(facts["fileIds"]),
            "createdAt": datetime.fromisoformat(facts["createdAt"]),
            "updatedAt": datetime.fromisoformat(facts["updatedAt"]),
            "version": version,
            "terms": search_fields(
                name=facts["name"], category=facts["category"], description=facts["description"]
            ),
        }
        return await self._guarded_upsert(
            {"_id": facts["productId"], "version": {"$not": {"$gte": version}}},
            {"$set": fields, "$setOnInsert": {"rating": _NEW_RATING}},
        )

    async def apply_stock(
        self, product_id: str, *, stock: int, position: int, sequence: int | None = None
    ) -> bool:
        """Set ``stock`` from the inventory record at ``position`` unless a later one applied.

        A stock change that overtakes the product's creation is kept, and shown once
        the catalog fields arrive.
        """
        return await self._stock.apply(
            product_id, stock=stock, position=position, sequence=sequence)

    async def apply_rating(self, product_id: str, *, average: float, count: int) -> bool:
        """Set the rating reached after ``count`` reviews unless a later one applied."""
        result = await self._products.update_one(
            {"_id": product_id, "rating.count": {"$not": {"$gte": count}}},
            {"$set": {"rating": {"average": average, "count": count}}},
        )
        return result.modified_count == 1

    async def get(self, product_id: str) -> Product | None:
        """The product ``product_id`` (archived ones too), if its catalog fields exist."""
        doc = await self._products.find_one({"_id": product_id}, {"terms": 0})
        if doc is None or "sellerId" not in doc:
            return None
        return product(_with_stock(doc, await self._stock.many([product_id])))

    async def seller_of(self, product_id: str) -> str | None:
        """Who sells ``product_id``, if it exists."""
        doc = await self._products.find_one({"_id": product_id}, {"sellerId": 1})
        return None if doc is None else doc.get("sellerId")

    async def page(self, listing: Listing) -> list[dict[str, Any]]:
        """Raw documents of one page of ``listing`` (``listing.fetch`` rows at most)."""
        cursor = await self._products.aggregate(pipeline(listing))
        rows = await cursor.to_list()
        levels = await self._stock.many(str(row["_id"]) for row in rows)
        return [_with_stock(row, levels) for row in rows]

    async def _guarded_upsert(self, query: dict[str, Any], update: dict[str, Any]) -> bool:
        try:
            result = await self._products.update_one(query, update, upsert=True)
        except DuplicateKeyError:
            return False  # the document exists and its guard says it is already newer
        return result.upserted_id is not None or result.modified_count == 1


def _with_stock(doc: dict[str, Any], levels: dict[str, int]) -> dict[str, Any]:
    # A product without a stock row keeps its own ``stock`` field: databases written
    # before stock moved out hold it there until the product's next stock change.
    if doc["_id"] in levels:
        doc["stock"] = levels[doc["_id"]]
    return doc


def product(doc: dict[str, Any]) -> Product:
    """A read-model document as a ``Product``."""
    rating = doc.get("rating") or _NEW_RATING
    return Product(
        product_id=doc["_id"],
        seller_id=doc["sellerId"],
        name=doc["name"],
        description=doc["description"],
        category=doc["category"],
        price=doc["price"],
        currency=doc["currency"],
        stock=doc.get("stock", 0),
        status=doc["status"],
        file_ids=tuple(doc.get("fileIds", ())),
        rating_average=float(rating["average"]),
        rating_count=int(rating["count"]),
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
        version=doc["version"],
    )
