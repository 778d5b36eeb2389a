"""Reviews: one per buyer and product, decided next to the product's rating.

Review commands travel on ``product-commands`` keyed by product id, so the
catalog agent hands them here and one partition owns both the set of buyers
who reviewed a product and its rating: the uniqueness check and the rating
update cannot race. The gateway has already checked the purchase.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from agents.runtime import caused
from agents.runtime.decisions import Decisions
from agents.runtime.effects import Effects
from agents.runtime.messages import request_message
from agents.runtime.replies import reply
from stores.products import ProductRepository
from stores.reviews import Review, ReviewRepository
from streams.envelope import Envelope, format_time
from streams.events.products import ReviewCreated, ReviewSubmitRequested

log = logging.getLogger(__name__)
SOURCE = "agents.catalog"
KEEP_DECISIONS = 32


class ReviewDecider:
    """Decides one review command against the product's reviewers and rating."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        products: MutableMapping[str, Any],
        effects: Effects,
    ) -> None:
        self._decisions = Decisions(
            table, effects, source=SOURCE, keep=KEEP_DECISIONS,
            empty={"reviewers": {}, "sum": 0, "count": 0},
        )
        self._products = products
        self._effects = effects

    async def handle(self, envelope: Envelope, *, now: datetime) -> str:
        """Process one review command; returns what happened."""
        command = envelope.payload(ReviewSubmitRequested)

        def evolve(entry: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
            if decision["outcome"] != "accepted":
                return entry
            return {
                **entry,
                "reviewers": {**entry["reviewers"], command.actor_id: command.review_id},
                "sum": entry["sum"] + command.rating,
                "count": decision["count"],
            }

        return await self._decisions.settle(
            envelope, lambda entry: self._decide(command, entry, now),
            key=command.product_id, deadline=command.deadline, now=now, evolve=evolve,
            reply_to=command.reply_to, apply=lambda d: self._apply(envelope, command, d),
            applied="reviewed",
        )

    async def _decide(
        self, command: ReviewSubmitRequested, entry: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        product = (self._products.get(command.product_id) or {}).get("product")
        if product is None:
            return {"outcome": "rejected", "code": "NOT_FOUND", "detail": "no such product"}
        if command.actor_id in entry["reviewers"]:
            return {
                "outcome": "rejected",
                "code": "REVIEW_EXISTS",
                "detail": "you have already reviewed this product",
            }
        count = entry["count"] + 1
        return {
            "outcome": "accepted",
            "at": format_time(now),
            "count": count,
            "average": round((entry["sum"] + command.rating) / count, 2),
            # Who is told, decided with the rest: a redelivery tells the same seller.
            "sellerId": product["sellerId"],
            "productName": product["name"],
        }

    async def _apply(
        self, envelope: Envelope, command: ReviewSubmitRequested, decision: dict[str, Any]
    ) -> None:
        at = datetime.fromisoformat(decision["at"])
        review = Review(
            review_id=command.review_id,
            product_id=command.product_id,
            buyer_id=command.actor_id,
            rating=command.rating,
            comment=command.comment,
            created_at=at,
        )
        await self._effects.repo(ReviewRepository).project(review)
        await self._effects.repo(ProductRepository).apply_rating(
            command.product_id, average=decision["average"], count=decision["count"]
        )
        event = await caused.emit(
            self._effects,
            ReviewCreated(
                review_id=command.review_id,
                product_id=command.product_id,
                buyer_id=command.actor_id,
                rating=command.rating,
                comment=command.comment,
                created_at=at,
                rating_average=decision["average"],
                rating_count=decision["count"],
            ),
            cause=envelope,
            source=SOURCE,
            at=at,
        )
        await self._effects.push(f"product:{command.product_id}", event)
        seller = decision.get("sellerId")  # absent from decisions made before sellers were told
        if seller is not None and seller != command.actor_id:
            await request_message(
                self._effects, envelope, user_id=seller, template="review_received",
                params={"productId": command.product_id, "productName": decision["productName"],
                        "reviewId": command.review_id, "rating": command.rating},
                source=SOURCE, at=at,
            )
        result = review.to_json()
        result["productRating"] = {"average": decision["average"], "count": decision["count"]}
        await reply(
            self._effects, envelope, reply_to=command.reply_to, source=SOURCE,
            outcome="accepted", result=result,
        )
