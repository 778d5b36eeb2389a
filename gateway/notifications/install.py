"""Notifications as the gateway installs them: their read model and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.notifications import routes
from gateway.notifications.keys import NOTIFICATIONS
from stores.notifications import NotificationRepository


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    """The notifications read model over the database ``mongo_ctx`` opened."""
    app[NOTIFICATIONS] = NotificationRepository(app[keys.MONGO_DB])
    yield


DOMAIN = Domain("notifications", contexts=(notifications_ctx,), routes=(routes.routes,))
