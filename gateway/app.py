"""``create_app(settings)``: wires routes, middlewares and resources; performs no I/O."""

from __future__ import annotations

import uuid

from aiohttp import web

from config import Settings
from gateway import keys
from gateway.analytics import event_routes as analytics_events
from gateway.analytics import report_routes as analytics
from gateway.audit import routes as audit
from gateway.catalog import listing_routes as product_list
from gateway.catalog import product_routes as products
from gateway.catalog import review_routes as reviews
from gateway.catalog.writes import SellerOwnsProduct
from gateway.docs import pages as docs
from gateway.files import content_routes as file_content
from gateway.files import permission_routes as file_permissions
from gateway.files import routes as files
from gateway.files import upload_routes as file_upload
from gateway.http.edge import Edge
from gateway.identity import auth_routes as auth
from gateway.identity import jwks_routes as jwks
from gateway.identity import refresh_routes as sessions
from gateway.identity import reset_routes as passwords
from gateway.identity import user_routes as users
from gateway.identity.auth import TokenService
from gateway.inventory import routes as stock
from gateway.notifications import routes as notifications
from gateway.ops import health
from gateway.ops.metrics import Metrics, metrics_handler
from gateway.orders import admin_routes as admin_orders
from gateway.orders import routes as orders
from gateway.orders.ordering import order_access
from gateway.push import setup_push
from gateway.runtime.backends import (
    catalog_ctx,
    files_ctx,
    identity_ctx,
    kafka_ctx,
    mongo_ctx,
    orders_ctx,
    ratelimit_ctx,
    redis_ctx,
)

MAX_BODY = 1024 * 1024


def create_app(settings: Settings, *, instance_id: str | None = None) -> web.Application:
    """The gateway application for ``settings``."""
    # One middleware and one response hook for every cross-cutting concern (gateway.http.edge):
    # request ids, CORS preflights, rate limits, revocation, problems, metrics, access log;
    # security, CORS and rate-limit headers on every response, streams included.
    app = web.Application(client_max_size=MAX_BODY)
    Edge(settings).install(app)
    app[keys.SETTINGS] = settings
    app[keys.INSTANCE_ID] = instance_id or uuid.uuid4().hex[:12]
    app[keys.TOKENS] = TokenService(settings)
    app[keys.METRICS] = Metrics()
    # Files may be linked to a product by its seller (or an admin).
    app[keys.PRODUCT_OWNERSHIP] = SellerOwnsProduct(app)

    app.cleanup_ctx.extend([mongo_ctx, redis_ctx, kafka_ctx, health.readiness_ctx])
    app.cleanup_ctx.append(ratelimit_ctx)
    app.cleanup_ctx.append(files_ctx)
    app.cleanup_ctx.append(identity_ctx)
    app.cleanup_ctx.append(catalog_ctx)
    app.cleanup_ctx.append(orders_ctx)
    # Buyers and sellers follow order:{id}; the hook reads the orders read model.
    setup_push(app, order_access=order_access(app))

    app.router.add_routes(auth.routes)
    app.router.add_routes(jwks.routes)
    app.router.add_routes(users.routes)
    app.router.add_routes(stock.routes)
    app.router.add_routes(orders.routes)
    app.router.add_routes(admin_orders.routes)
    for catalog_routes in (products, product_list, reviews):
        app.router.add_routes(catalog_routes.routes)
    for identity_routes in (sessions, passwords, notifications, audit):
        app.router.add_routes(identity_routes.routes)
    for file_routes in (file_upload, files, file_content, file_permissions):
        app.router.add_routes(file_routes.routes)
    for analytics_routes in (analytics_events, analytics):
        app.router.add_routes(analytics_routes.routes)
    app.router.add_get("/health/live", health.live)
    app.router.add_get("/health/ready", health.ready)
    app.router.add_get("/metrics", metrics_handler)
    docs.setup(app)
    return app
