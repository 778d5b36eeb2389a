"""State of the orders domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.orders.idempotency import IdempotencyRecords
    from stores.orders import OrderRepository
    from stores.product_lookup import ProductLookup

ORDERS: web.AppKey[OrderRepository] = web.AppKey("orders")
# The catalog as orders price it (a narrow lookup, not the catalog's repository).
ORDER_PRODUCTS: web.AppKey[ProductLookup] = web.AppKey("order_products")
IDEMPOTENCY: web.AppKey[IdempotencyRecords] = web.AppKey("idempotency")
