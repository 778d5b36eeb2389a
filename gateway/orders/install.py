"""Orders as the gateway installs them: read model, pricing lookup, idempotency records, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.orders import admin_routes, routes
from gateway.orders.idempotency import IdempotencyRecords
from gateway.orders.keys import IDEMPOTENCY, ORDER_PRODUCTS, ORDERS
from stores.orders import OrderRepository
from stores.product_lookup import ProductLookup


async def orders_ctx(app: web.Application) -> AsyncIterator[None]:
    """Orders read model, the catalog lookup for pricing, and Idempotency-Key records."""
    db = app[keys.MONGO_DB]
    app[ORDERS] = OrderRepository(db)
    app[ORDER_PRODUCTS] = ProductLookup(db)
    app[IDEMPOTENCY] = IdempotencyRecords(app[keys.REDIS])
    yield


DOMAIN = Domain("orders", contexts=(orders_ctx,), routes=(routes.routes, admin_routes.routes))
