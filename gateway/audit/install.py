"""The audit log as the gateway installs it: its read model and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.audit import routes
from gateway.audit.keys import AUDIT_LOGS
from gateway.domain import Domain
from stores.audit import AuditRepository


async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """The audit log's reads over the database ``mongo_ctx`` opened."""
    app[AUDIT_LOGS] = AuditRepository(app[keys.MONGO_DB])
    yield


DOMAIN = Domain("audit", contexts=(audit_ctx,), routes=(routes.routes,))
