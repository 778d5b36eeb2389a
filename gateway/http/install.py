"""The edge as the gateway installs it: its middleware, rate limits and the revocations it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.http.edge import Edge
from gateway.http.ratelimit import open_rate_limits
from gateway.http.revocation import Revocations


def _install_edge(app: web.Application) -> None:
    # One middleware and one response hook for every cross-cutting concern (gateway.http.edge):
    # request ids, CORS preflights, rate limits, revocation, problems, metrics, access log;
    # security, CORS and rate-limit headers on every response, streams included.
    Edge(app[keys.SETTINGS]).install(app)


async def ratelimit_ctx(app: web.Application) -> AsyncIterator[None]:
    """Shared rate-limit buckets (own Redis client, fail-open) and the idle-client sweeper."""
    settings = app[keys.SETTINGS]
    if not settings.rate_limit_enabled:
        yield
        return
    async with open_rate_limits(settings, app[keys.METRICS].registry) as limits:
        app[keys.RATE_LIMITS] = limits
        yield


async def revocations_ctx(app: web.Application) -> AsyncIterator[None]:
    """The users' "not before" instants the edge refuses tokens by (Redis)."""
    settings = app[keys.SETTINGS]
    # Kept as long as the tokens it can refuse live (stream tickets are shorter still).
    app[keys.REVOCATIONS] = Revocations(
        app[keys.REDIS], prefix=f"{settings.app_id}:", retain_seconds=settings.access_token_ttl + 60
    )
    yield


# Revocations open before push, whose hub checks them from its start.
DOMAIN = Domain("http", setup=_install_edge, contexts=(ratelimit_ctx, revocations_ctx))
