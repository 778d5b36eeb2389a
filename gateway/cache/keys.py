"""State of the response cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.cache.store import ResponseCache

RESPONSE_CACHE: web.AppKey[ResponseCache] = web.AppKey("response_cache")
