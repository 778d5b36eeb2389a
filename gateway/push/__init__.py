"""Real-time push: the hub, WebSocket and SSE endpoints, and stream tickets."""

from __future__ import annotations

import functools

from aiohttp import web

from gateway.push.channels import OrderAccess
from gateway.push.hub import PushHub, close_streams, push_ctx
from gateway.push.routes import routes

__all__ = ["OrderAccess", "PushHub", "setup_push"]


def setup_push(app: web.Application, *, order_access: OrderAccess | None = None) -> None:
    """Add the push routes and the hub's lifetime (its context reads the revocations: install
    it after them, as ``gateway.app.DOMAINS`` does)."""
    app.router.add_routes(routes())
    if order_access is None:
        app.cleanup_ctx.append(push_ctx)
    else:
        app.cleanup_ctx.append(functools.partial(push_ctx, order_access=order_access))
    # cleanup_ctx teardown runs only after aiohttp has waited for open handlers, so
    # streams must be ended earlier, on shutdown, or it would wait out shutdown_timeout.
    app.on_shutdown.append(close_streams)
