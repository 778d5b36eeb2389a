"""``create_app(settings)``: wires routes, middlewares and resources; performs no I/O."""

from __future__ import annotations

import uuid

from aiohttp import web

from config import Settings
from gateway import docs, health, keys
from gateway.auth import TokenService
from gateway.metrics import Metrics, metrics_handler, metrics_middleware
from gateway.middleware import error_middleware
from gateway.push import setup_push
from gateway.resources import kafka_ctx, mongo_ctx, redis_ctx
from gateway.routes import auth, users

MAX_BODY = 1024 * 1024


def create_app(settings: Settings, *, instance_id: str | None = None) -> web.Application:
    """The gateway application for ``settings``."""
    # Metrics wrap the error boundary so problem responses are counted by status too.
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware], client_max_size=MAX_BODY
    )
    app[keys.SETTINGS] = settings
    app[keys.INSTANCE_ID] = instance_id or uuid.uuid4().hex[:12]
    app[keys.TOKENS] = TokenService(settings)
    app[keys.METRICS] = Metrics()

    app.cleanup_ctx.extend([mongo_ctx, redis_ctx, kafka_ctx, health.readiness_ctx])
    setup_push(app)

    app.router.add_routes(auth.routes)
    app.router.add_routes(users.routes)
    app.router.add_get("/health/live", health.live)
    app.router.add_get("/health/ready", health.ready)
    app.router.add_get("/metrics", metrics_handler)
    docs.setup(app)
    return app
