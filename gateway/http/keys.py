"""State only the HTTP edge reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.http.edge import Edge
    from gateway.http.ratelimit import Decision

# The edge (gateway.http.edge): its middleware, and headers for handlers that stream.
EDGE: web.AppKey[Edge] = web.AppKey("edge")
# The limiter's verdict on a limited route, set by the edge (for handlers that stream)
# and replaced by ratelimit.charge, so the response's headers say what it left.
RATE_DECISION: web.RequestKey[Decision] = web.RequestKey("rate_decision")
