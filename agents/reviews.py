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

from agents.effects import Effects
from agents.messages import request_message
from agents.replies import record_expired, reply
from stores.products import ProductRepository
from stores.reviews import Review, ReviewRepository
from streams.envelope import Envelope, derived_id, format_time, new_event
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
        self._table = table
        self._products = products
        self._effects = effects

    async def handle(self, envelope: Envelope, *, now: datetime) -> str:
        """Process one review command; returns what happened."""
        command = envelope.payload(ReviewSubmitRequested)
        entry = self._table.get(command.product_id) or {
            "reviewers": {}, "sum": 0, "count": 0, "decisions": {}
        }
        decision: dict[str, Any] | None = entry["decisions"].get(envelope.id)
        if decision is None:
            if now > command.deadline:
                await record_expired(
                    self._effects, envelope, deadline=command.deadline, now=now, source=SOURCE
                )
                return "expired"
            decision = self._decide(command, entry, now)
            entry = dict(entry)
            if decision["outcome"] == "accepted":
                entry["reviewers"] = {**entry["reviewers"], command.actor_id: command.review_id}
                entry["sum"] = entry["sum"] + command.rating
                entry["count"] = decision["count"]
            decisions = {**entry["decisions"], envelope.id: decision}
            while len(decisions) > KEEP_DECISIONS:
                decisions.pop(next(iter(decisions)))
            entry["decisions"] = decisions
            self._table[command.product_id] = entry
        if decision["outcome"] == "rejected":
            await reply(
                self._effects, envelope, reply_to=command.reply_to, source=SOURCE,
                outcome="rejected", code=decision["code"], detail=decision["detail"],
            )
            return "rejected"
        await self._apply(envelope, command, decision)
        return "reviewed"

    def _decide(
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
        event = new_event(
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
            key=command.product_id,
            source=SOURCE,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.id,
            event_id=derived_id(envelope.id, "review.created"),
            occurred_at=at,
        )
        await self._effects.emit("products", event)
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
