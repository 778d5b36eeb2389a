"""Webhooks as the gateway installs them: the endpoint store, the delivery log, the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.webhooks import routes
from gateway.webhooks.keys import DELIVERIES, WEBHOOKS
from stores.webhooks import DeliveryLog, WebhookRepository


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The endpoint store and delivery log over the database ``mongo_ctx`` opened."""
    app[WEBHOOKS] = WebhookRepository(app[keys.MONGO_DB])
    app[DELIVERIES] = DeliveryLog(app[keys.MONGO_DB])
    yield


DOMAIN = Domain("webhooks", contexts=(webhooks_ctx,), routes=(routes.routes,))
