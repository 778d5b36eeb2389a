"""Test apps behind the real edge middleware (request ids, problems, headers)."""

from __future__ import annotations

from aiohttp import web

from config import Settings
from gateway.http.edge import Edge


def edge_app(settings: Settings | None = None) -> web.Application:
    """An empty application whose requests go through ``gateway.http.edge.Edge``."""
    app = web.Application()
    Edge(settings or Settings()).install(app)
    return app
