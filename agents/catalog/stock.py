"""Stock projection: the inventory agent's public stock changes, into the stock read model.

The inventory agent's table is the source of truth for stock; this agent only
copies ``currentStock`` into ``stores.stock`` (beside the product document, not
in it: see there), which every product read joins back. Records are keyed by
product id, so one product's changes sit in one partition in order and the
record offset orders them: the projection keeps the highest offset it applied
("last writer by offset wins"), so a redelivered or older record changes
nothing. (Offsets restart if the topic is ever re-created; so does the read model.)
"""

from __future__ import annotations

import logging

from agents.runtime.effects import Effects
from stores.products import ProductRepository
from streams.envelope import Envelope
from streams.events.inventory import StockChanged

log = logging.getLogger(__name__)


class StockProjector:
    """Applies one ``inventory`` record to the stock read model and pushes it."""

    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def handle(self, raw: bytes, *, offset: int) -> str:
        """Process the record at ``offset``; returns what happened."""
        envelope = Envelope.decode(raw)
        if envelope.type != "inventory.stock_changed":
            return "ignored"  # reservations and other inventory facts do not change the model
        change = envelope.payload(StockChanged)
        applied = await self._effects.repo(ProductRepository).apply_stock(
            change.product_id, stock=change.current_stock, position=offset
        )
        # Pushed even when already applied: a crash may have come between the two, and
        # subscribers dedupe by the envelope id, which is the inventory event's own.
        await self._effects.push(f"product:{change.product_id}", envelope)
        return "applied" if applied else "duplicate"
