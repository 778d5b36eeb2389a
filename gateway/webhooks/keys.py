"""State of the webhooks domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from stores.webhooks import DeliveryLog, WebhookRepository

WEBHOOKS: web.AppKey[WebhookRepository] = web.AppKey("webhooks")
DELIVERIES: web.AppKey[DeliveryLog] = web.AppKey("webhook_deliveries")
