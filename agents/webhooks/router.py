"""The router: turns each followed event into deliveries for the endpoints that may see it.

A seller's endpoint receives only events about their own products and orders (the owner is
found from the event, or from the read model of the order, product or file it is about);
an admin's endpoint receives every owner's. Each delivery's id derives from the webhook and
the event, so a redelivered event asks for the same deliveries and the webhooks agent makes
each once. The router only reads and emits: the requests are made by the dispatcher.

Most events concern nobody with an endpoint, and the routers read every order, payment,
product, file and stock event: while no endpoint at all is enabled, that answer is kept for
``QUIET_SECONDS`` instead of a query per event, so an endpoint receives the events from
about then after its registration. Events that occurred before an endpoint subscribed to
them are never its own, so a replay of old events sends it none of them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from agents.runtime import caused
from agents.runtime.effects import Effects
from agents.webhooks.catalogue import event_types, selectors
from stores.files import FileRepository
from stores.orders import OrderRepository
from stores.product_lookup import ProductLookup
from stores.webhooks import WebhookRepository
from streams.envelope import Envelope, derived_id
from streams.events.webhooks import DeliveryRequested

log = logging.getLogger(__name__)
SOURCE = "agents.webhooks.router"
QUIET_SECONDS = 1.0


class WebhookRouter:
    """Handles one record of a followed topic."""

    def __init__(self, effects: Effects) -> None:
        self._effects = effects
        self._quiet_until = 0.0  # monotonic time until which no endpoint is known enabled

    async def handle(self, raw: bytes) -> str:
        """Request a delivery per subscribed endpoint; returns how many (for logs and tests)."""
        envelope = Envelope.decode(raw)
        if envelope.type not in event_types():
            return "ignored"
        repo = self._effects.repo(WebhookRepository)
        if time.monotonic() < self._quiet_until:
            return "no endpoints"
        if not await repo.any_enabled():
            self._quiet_until = time.monotonic() + QUIET_SECONDS
            return "no endpoints"
        owners = await self.owners(envelope)
        occurred = datetime.fromisoformat(envelope.occurred_at)
        # A replay (a rebuild, a restore) reads old events again: an endpoint subscribed
        # after one occurred must not be sent it, for the first time, as if it were new.
        subscribed = await repo.subscribed(selectors(envelope.type, envelope.data), owners)
        endpoints = [endpoint for endpoint in subscribed if occurred >= endpoint.since]
        body = raw.decode()
        for endpoint in endpoints:
            await caused.emit(
                self._effects,
                DeliveryRequested(
                    webhook_id=endpoint.webhook_id,
                    delivery_id=derived_id(endpoint.webhook_id, envelope.id),
                    event_id=envelope.id,
                    event_type=envelope.type,
                    body=body,
                    requested_at=datetime.fromisoformat(envelope.occurred_at),
                ),
                cause=envelope, source=SOURCE, name=f"webhook:{endpoint.webhook_id}",
            )
        return f"routed to {len(endpoints)}"

    async def owners(self, envelope: Envelope) -> set[str]:
        """The users an event is about, as owners of what it concerns."""
        data = envelope.data
        family = envelope.type.split(".", 1)[0]
        if family == "order":
            sellers = data.get("sellerIds") or [line.get("sellerId") for line in
                                                data.get("items", [])]
            return {str(seller) for seller in sellers if seller}
        if family == "payment":
            parties = await self._effects.repo(OrderRepository).parties(str(data["orderId"]))
            return set() if parties is None else set(parties[1])
        if family in ("review", "inventory"):
            product_id = str(data["productId"])
            found = await self._effects.repo(ProductLookup).many([product_id])
            return {found[product_id].seller_id} if product_id in found else set()
        if family == "file":
            if data.get("ownerId"):
                return {str(data["ownerId"])}
            meta = await self._effects.repo(FileRepository).get(str(data["fileId"]))
            return set() if meta is None else {meta.owner_id}
        return set()
