"""Feature flags as the gateway installs them: the flag book and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.features import routes
from streams.flags.book import FlagBook, following


async def flags_ctx(app: web.Application) -> AsyncIterator[None]:
    """The flag book, loaded before the gateway serves anything (so readiness waits too)."""
    book = FlagBook(app[keys.SETTINGS], client=f"gateway-{app[keys.INSTANCE_ID]}")
    async with following(book):
        app[keys.FLAGS] = book
        yield


DOMAIN = Domain("features", contexts=(flags_ctx,), routes=(routes.routes,))
