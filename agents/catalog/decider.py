"""Catalog: products created, changed and archived one product at a time.

Commands arrive on ``product-commands`` keyed by product id, so one agent
decides each product's changes in order against its table entry (the source of
truth, version included); the If-Match check happens here, not only in the
gateway. The decision (with the product snapshot it leads to) is stored
*before* the effects run; a redelivered command repeats the same effects with
the same ids, and the version-guarded projection makes repeats change nothing.
Review commands share the topic and key, so reviews are decided next to the
rating they update (``agents.catalog.reviews``).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from agents.catalog.reviews import ReviewDecider
from agents.catalog.rules import Decision, decide
from agents.runtime import caused
from agents.runtime.decisions import Decisions
from agents.runtime.effects import Effects
from agents.runtime.replies import reply
from stores.products import Product, ProductRepository
from stores.suggestions import SuggestionRepository
from streams.envelope import Envelope, utcnow
from streams.events.inventory import AdjustRequested
from streams.events.products import (
    ProductArchived,
    ProductArchiveRequested,
    ProductCommand,
    ProductCreated,
    ProductCreateRequested,
    ProductUpdated,
    ProductUpdateRequested,
)
from streams.registry import Payload

log = logging.getLogger(__name__)
SOURCE = "agents.catalog"
# Redelivery happens within seconds; a product's last decisions are plenty to recognise it.
KEEP_DECISIONS = 32
COMMANDS: dict[str, type[ProductCommand]] = {
    "product.create_requested": ProductCreateRequested,
    "product.update_requested": ProductUpdateRequested,
    "product.archive_requested": ProductArchiveRequested,
}


class CatalogDecider:
    """Decides one catalog command against the product table and carries it out."""

    def __init__(
        self, table: MutableMapping[str, Any], effects: Effects, reviews: ReviewDecider
    ) -> None:
        self._decisions = Decisions(
            table, effects, source=SOURCE, keep=KEEP_DECISIONS, empty={"product": None}
        )
        self._effects = effects
        self._reviews = reviews

    @property
    def _products(self) -> ProductRepository:
        return self._effects.repo(ProductRepository)

    async def handle(self, raw: bytes, *, now: datetime | None = None) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        now = now or utcnow()
        if envelope.type == "review.submit_requested":
            return await self._reviews.handle(envelope, now=now)
        model = COMMANDS.get(envelope.type)
        if model is None:
            log.warning("catalog agent ignores %s", envelope.type)
            return "ignored"
        command = envelope.payload(model)

        async def decide_on(entry: dict[str, Any]) -> Decision:
            return decide(command, entry["product"], now)

        return await self._decisions.settle(
            envelope, decide_on, key=command.product_id, deadline=command.deadline, now=now,
            evolve=_evolve, reply_to=command.reply_to,
            apply=lambda d: self._apply(envelope, command, d),
        )

    async def _apply(self, envelope: Envelope, command: ProductCommand, decision: Decision) -> str:
        """Carry out an accepted decision and answer; returns its kind (created, ...)."""
        facts: dict[str, Any] = decision["product"]
        kind = decision["kind"]
        if kind != "unchanged":
            await self._products.project(facts)
        stored = await self._products.get(command.product_id)
        if stored is not None:
            # Before the event, which drops cached answers: none may be refilled from an
            # index not written yet. From the stored (newest) version, so an older command
            # repeated rewrites nothing.
            await self._effects.repo(SuggestionRepository).index(stored)
        if kind != "unchanged":
            event = await caused.emit(
                self._effects, _payload(command, decision), cause=envelope, source=SOURCE,
                at=datetime.fromisoformat(decision["at"]),
            )
            if kind == "created":
                await self._request_initial_stock(envelope, command, decision)
            else:
                # Subscribers of product:{id} watch price and status; creation has none yet.
                await self._effects.push(f"product:{command.product_id}", event)
        result = _result(stored, facts)
        if kind == "created":
            # The inventory agent owns stock; the answer shows what it is being created with.
            result["stock"] = decision["initialStock"]
        await reply(
            self._effects, envelope, reply_to=command.reply_to, source=SOURCE,
            outcome="accepted", result=result,
        )
        return str(kind)

    async def _request_initial_stock(
        self, envelope: Envelope, command: ProductCommand, decision: Decision
    ) -> None:
        quantity: int = decision["initialStock"]
        if quantity <= 0:
            return
        adjust = AdjustRequested(
            product_id=command.product_id,
            quantity_change=quantity,
            requested_by=command.actor_id,
            reply_to="",  # nobody waits: the product's creation already answered
        )
        # Same id on redelivery: the inventory agent applies each adjustment once.
        await caused.emit(
            self._effects, adjust, cause=envelope, source=SOURCE,
            at=datetime.fromisoformat(decision["at"]),
        )


def _payload(command: ProductCommand, decision: Decision) -> Payload:
    """The public event of an applied decision (there is none for "unchanged")."""
    facts = decision["product"]
    kind = decision["kind"]
    if kind == "created":
        return ProductCreated.model_validate({**facts, "initialStock": decision["initialStock"]})
    if kind == "updated":
        return ProductUpdated.model_validate(
            {**facts, "changed": decision["changed"], "actorId": command.actor_id}
        )
    return ProductArchived(
        product_id=command.product_id,
        seller_id=facts["sellerId"],
        version=facts["version"],
        actor_id=command.actor_id,
        archived_at=datetime.fromisoformat(decision["at"]),
    )


def _evolve(entry: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """An accepted decision leads to its product snapshot; a rejection changes nothing."""
    product = decision["product"] if decision["outcome"] == "accepted" else entry["product"]
    return {"product": product}


def _result(stored: Product | None, facts: dict[str, Any]) -> dict[str, Any]:
    """The product as decided, with the stock and rating the read model has now."""
    out = dict(facts)
    out["stock"] = stored.stock if stored is not None else 0
    out["rating"] = (
        {"average": stored.rating_average, "count": stored.rating_count}
        if stored is not None
        else {"average": 0.0, "count": 0}
    )
    return out
