"""The reviews read model (written by the catalog agent) and the purchase check reviews need."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from stores.keyset import keyset_after
from streams.envelope import format_time

COLLECTION = "reviews"
# Projected by the order saga as {_id: orderId, buyerId, status, items: [{productId, ...}]}.
ORDERS = "orders"
INDEXES = {
    COLLECTION: [
        IndexModel([("productId", ASCENDING), ("buyerId", ASCENDING)], unique=True,
                   name="one_per_buyer"),
        IndexModel([("productId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                   name="product_newest"),
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class Review:
    """A review as the API shows it."""

    review_id: str
    product_id: str
    buyer_id: str
    rating: int
    comment: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The contract's review object."""
        return {
            "reviewId": self.review_id,
            "productId": self.product_id,
            "buyerId": self.buyer_id,
            "rating": self.rating,
            "comment": self.comment,
            "createdAt": format_time(self.created_at),
        }


class ReviewRepository:
    """Intention-revealing access to the ``reviews`` collection and buyers' orders."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._reviews = db[COLLECTION]
        self._orders = db[ORDERS]

    async def project(self, review: Review) -> bool:
        """Insert the review once; re-applying it changes nothing. Returns whether it wrote."""
        result = await self._reviews.update_one(
            {"_id": review.review_id},
            {
                "$setOnInsert": {
                    "productId": review.product_id,
                    "buyerId": review.buyer_id,
                    "rating": review.rating,
                    "comment": review.comment,
                    "createdAt": review.created_at,
                }
            },
            upsert=True,
        )
        return result.upserted_id is not None

    async def page(
        self, product_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Review]:
        """Up to ``limit`` reviews of ``product_id``, newest first, after ``after``."""
        query: dict[str, Any] = {"productId": product_id}
        if after is not None:
            query.update(keyset_after("createdAt", after))
        cursor = self._reviews.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        return [_review(doc) for doc in await cursor.limit(limit).to_list()]

    async def has_completed_purchase(self, buyer_id: str, product_id: str) -> bool:
        """Whether ``buyer_id`` has a completed order containing ``product_id``."""
        found = await self._orders.find_one(
            {"buyerId": buyer_id, "status": "completed", "items.productId": product_id},
            {"_id": 1},
        )
        return found is not None


def _review(doc: dict[str, Any]) -> Review:
    return Review(
        review_id=doc["_id"],
        product_id=doc["productId"],
        buyer_id=doc["buyerId"],
        rating=doc["rating"],
        comment=doc["comment"],
        created_at=doc["createdAt"],
    )
