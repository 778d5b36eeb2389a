"""Stock projection: the inventory agent's public stock changes, into the stock read model.

The inventory agent's table is the source of truth for stock; this agent only
copies ``currentStock`` into ``stores.stock`` (beside the product document, not
in it: see there), which every product read joins back. Records are keyed by
product id, so one product's changes sit in one partition in order, but the
offset does not order their levels: a change is sent again, with its old level,
when its command comes again (the saga repeats its last plan after a crash). So
the projection keeps the change with the highest ``sequence`` the inventory gave
it ("last decided wins"), and a repeated or older change changes nothing
(found by the chaos tier: the read model ended on an older level). Changes from
before the numbering fall back to the record offset.
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
            change.product_id, stock=change.current_stock, position=offset,
            sequence=change.sequence,
        )
        # Pushed even when already applied: a crash may have come between the two, and
        # subscribers dedupe by the envelope id, which is the inventory event's own.
        await self._effects.push(f"product:{change.product_id}", envelope)
        return "applied" if applied else "duplicate"
