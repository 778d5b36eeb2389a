"""The operators' probes as the gateway installs them: readiness clients, health and metrics."""

from __future__ import annotations

from aiohttp import web

from gateway.domain import Domain
from gateway.ops import backups, health
from gateway.ops.metrics import metrics_handler


def _routes(app: web.Application) -> None:
    app.router.add_get("/health/live", health.live)
    app.router.add_get("/health/ready", health.ready)
    app.router.add_get("/metrics", metrics_handler)


DOMAIN = Domain("ops", setup=_routes, contexts=(health.readiness_ctx, backups.backups_ctx),
                routes=(backups.routes,))
