"""Groups as the gateway installs them: their read model and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.groups import routes
from gateway.groups.keys import GROUPS
from stores.groups import GroupRepository


async def groups_ctx(app: web.Application) -> AsyncIterator[None]:
    """The groups read model over the database ``mongo_ctx`` opened."""
    app[GROUPS] = GroupRepository(app[keys.MONGO_DB])
    yield


DOMAIN = Domain("groups", contexts=(groups_ctx,), routes=(routes.routes,))
