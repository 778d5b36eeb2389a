"""The response cache as the gateway opens it, and what drops its entries.

Two things drop a product's entries (its own answers and every listing):

- each gateway's push hub, for every ``product:{id}`` record it reads (stock, price,
  status and rating changes are all pushed there), before the record is fanned out;
- the gateway that made a change through the catalog agent, as soon as the agent has
  answered, so the caller's next read, on any gateway, already misses. Creations are
  dropped only here: a new product has no push record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge
from redis.exceptions import RedisError

from gateway import keys
from gateway.cache.keys import RESPONSE_CACHE
from gateway.cache.local import LocalEntries
from gateway.cache.store import LISTINGS, ResponseCache, product_scope
from gateway.push.keys import PUSH_HUB

log = logging.getLogger(__name__)
PRODUCT_CHANNEL = "product:"
PUSH_DROP_SECONDS = 1.0


def scopes_of(channels: frozenset[str]) -> set[str]:
    """The cache scopes the push records of ``channels`` change."""
    products = {c.removeprefix(PRODUCT_CHANNEL) for c in channels if c.startswith(PRODUCT_CHANNEL)}
    if not products:
        return set()
    return {LISTINGS, *(product_scope(p) for p in products)}


async def response_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cache over the app's Redis, dropped by the push hub's product records."""
    settings = app[keys.SETTINGS]
    if not settings.response_cache:
        yield
        return
    local = LocalEntries(
        entries=settings.response_cache_local_entries,
        max_bytes=settings.response_cache_local_bytes,
        # A copy never outlives the shared entry it mirrors (see gateway.cache.local).
        ttl=min(settings.response_cache_local_ttl, settings.response_cache_ttl),
    )
    cache = ResponseCache(
        app[keys.REDIS], prefix=f"{settings.app_id}:rc:", ttl=settings.response_cache_ttl,
        local=local,
    )

    async def on_push(channels: frozenset[str]) -> None:
        if scopes := scopes_of(channels):
            try:
                # Fan-out waits for this: a Redis that hangs must not stall every stream.
                async with asyncio.timeout(PUSH_DROP_SECONDS):
                    await cache.drop(scopes)
            except (TimeoutError, RedisError):
                # Other gateways drop the same shared entries; this one reads through.
                cache.distrust(scopes)
                raise

    hub = app.get(PUSH_HUB)
    if hub is not None:
        hub.listeners.append(on_push)
    app[RESPONSE_CACHE] = cache
    _observe(app, cache, local)
    try:
        yield
    finally:
        if hub is not None:
            hub.listeners.remove(on_push)
        await cache.aclose()


def _observe(app: web.Application, cache: ResponseCache, local: LocalEntries) -> None:
    # Plain counters read at scrape time: a hit pays no instrument of its own.
    registry = app[keys.METRICS].registry
    answers = Gauge("mercato_response_cache_answers_total",
                    "Public reads by where the response cache found them (miss: filled or "
                    "read through)", ["source"], registry=registry)
    checks = Gauge("mercato_response_cache_generation_reads_total",
                   "Redis round trips reading scope generations (each shared by the "
                   "public reads that queued for it)", registry=registry)
    held = Gauge("mercato_response_cache_local_bytes",
                 "Bytes of answers this gateway holds in memory", registry=registry)

    async def refresh() -> None:
        answers.labels(source="local").set(cache.local_hits)
        answers.labels(source="redis").set(cache.hits - cache.local_hits)
        answers.labels(source="miss").set(cache.misses)
        checks.set(cache.generation_reads)
        held.set(local.size)

    app[keys.METRICS].refreshers.append(refresh)


async def changed(request: web.Request, product_id: str) -> None:
    """Drop ``product_id``'s entries after a change the agent accepted (see the docstring)."""
    cache = request.app.get(RESPONSE_CACHE)
    if cache is None:
        return
    scopes = {LISTINGS, product_scope(product_id)}
    try:
        async with asyncio.timeout(PUSH_DROP_SECONDS):  # a hung Redis must not hold the answer
            await cache.drop(scopes)
    except (TimeoutError, RedisError) as exc:
        cache.distrust(scopes)
        # The change is made; its push record drops the entries too, and without Redis
        # nothing is served from the cache (entries live response_cache_ttl at most).
        log.warning("response cache drop failed", extra={"error": repr(exc)})
