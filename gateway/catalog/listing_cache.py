"""Public listing-shaped answers (product pages of a search, suggestions) through the
response cache: one fill per key, dropped with every listing by any product change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway import keys
from gateway.cache.keys import RESPONSE_CACHE
from gateway.cache.store import LISTINGS, pack, unpack
from gateway.http.caching import body_etag, cache_control, public_answer


async def listing_answer(
    request: web.Request, key: str, render: Callable[[], Awaitable[bytes]]
) -> web.Response:
    """``render()``'s JSON body under the listings' scope and ``key``, with its ETag and the
    listings' ``Cache-Control``; read through when the gateway runs without the cache."""

    async def load() -> bytes:
        raw = await render()
        return pack(body_etag(raw), raw)

    cache = request.app.get(RESPONSE_CACHE)
    entry = await load() if cache is None else await cache.fetch(LISTINGS, key, load)
    tag, raw = unpack(entry)
    settings = request.app[keys.SETTINGS]
    control = cache_control(settings.cache_listing_max_age, settings.cache_stale_while_revalidate)
    return public_answer(request, raw, control=control, etag=tag)
