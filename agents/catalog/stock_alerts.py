"""Stock alerts: a seller is told when one of their products falls below their threshold.

Reads the public ``inventory`` topic (keyed by product id, so one product's changes
arrive in order). Each ``inventory.stock_changed`` carries the new level and the
change, so the level before it is known without any state: an alert is due when
that change crosses the threshold downwards (before >= threshold > after). A
product that recovers and falls again is announced again. The message id derives
from the stock change's id, so a redelivered change never alerts twice; the
notifications agent keeps the seller's notifications and unread count.

The threshold is the seller's own (``stockLowThreshold`` on their profile) or
``Settings.stock_low_threshold``; 0 turns alerts off. Only falling changes are
looked up (product, then seller), off the order path: the inventory agent never
waits for this. Both lookups are kept ``LOOKUP_TTL`` seconds: every sale is a falling
change, and two MongoDB reads per sale were a tenth of the worker's time under load; a
seller's new threshold (or a product archived) then applies within that.
"""

from __future__ import annotations

import logging

from agents.runtime.effects import Effects
from agents.runtime.messages import request_message
from stores.expiring import Expiring
from stores.product_lookup import ProductLookup, ProductView
from streams.envelope import Envelope
from streams.events.inventory import StockChanged

log = logging.getLogger(__name__)
SOURCE = "agents.stock-alerts"
LOOKUP_TTL = 5.0
LOOKUP_SIZE = 10_000


def crossed(change: StockChanged, threshold: int) -> bool:
    """Whether ``change`` took the stock from at least ``threshold`` to below it."""
    before = change.current_stock - change.change
    return change.current_stock < threshold <= before


class StockAlerts:
    """Decides, for one stock change, whether the product's seller must hear of it."""

    def __init__(self, effects: Effects, *, default_threshold: int) -> None:
        self._effects = effects
        self._default = default_threshold
        self._products: Expiring[str, ProductView | None] = Expiring(
            ttl=LOOKUP_TTL, size=LOOKUP_SIZE)
        self._thresholds: Expiring[str, int | None] = Expiring(ttl=LOOKUP_TTL, size=LOOKUP_SIZE)

    async def handle(self, raw: bytes) -> str:
        """Process one ``inventory`` record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        if envelope.type != "inventory.stock_changed":
            return "ignored"
        change = envelope.payload(StockChanged)
        if change.change >= 0:
            return "rising"
        # A product not found (not projected yet) is looked up again next time.
        product = await self._products.get(
            change.product_id, lambda: self._product(change.product_id),
            keep=lambda found: found is not None)
        if product is None or not product.available:
            return "unknown"
        seller = product.seller_id
        own = await self._thresholds.get(
            seller, lambda: self._effects.users.stock_low_threshold(seller))
        threshold = self._default if own is None else own
        if not crossed(change, threshold):
            return "enough"
        await request_message(
            self._effects, envelope, user_id=product.seller_id, template="stock_low",
            params={"productId": product.product_id, "productName": product.name,
                    "currentStock": change.current_stock, "threshold": threshold},
            source=SOURCE,
        )
        return "low"

    async def _product(self, product_id: str) -> ProductView | None:
        return (await self._effects.repo(ProductLookup).many([product_id])).get(product_id)
