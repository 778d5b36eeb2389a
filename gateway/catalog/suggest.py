"""GET /v1/search/suggest: prefix suggestions for a search box, most popular first.

One indexed lookup of ``stores.suggestions`` per answer, through the response
cache in the listings' scope: any product change drops the cached answers, and
popularity, which moves without a product change, is at most the cache's TTL
(and ``Cache-Control`` max-age) old.
"""

from __future__ import annotations

import hashlib

import orjson
from aiohttp import web

from gateway.catalog.keys import SUGGESTIONS
from gateway.catalog.listing_cache import listing_answer
from gateway.docs.openapi import operation
from gateway.http.caching import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    PUBLIC_HEADERS,
    public_read,
)
from gateway.http.responses import Out
from streams.errors import FieldError, InvalidInput

routes = web.RouteTableDef()
MAX_QUERY = 64
DEFAULT_LIMIT = 8
MAX_LIMIT = 20


class SuggestionOut(Out):
    """One suggestion: a product (with its id) or a category."""

    text: str
    kind: str
    product_id: str | None = None


class SuggestionsOut(Out):
    """Categories (a quarter of the limit, rounded down), then products; most popular first."""

    suggestions: list[SuggestionOut]


def _query(request: web.Request) -> tuple[str, int]:
    """``q`` and ``limit``; 422 naming every bad one."""
    errors: list[FieldError] = []
    q = request.query.get("q", "")
    if not 1 <= len(q) <= MAX_QUERY:
        errors.append(FieldError("q", f"1 to {MAX_QUERY} characters"))
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    # int() decides, as in the listings' pagination: str.isdigit() admits "²", int() does not.
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        errors.append(FieldError("limit", f"an integer from 1 to {MAX_LIMIT}"))
    if errors:
        raise InvalidInput("the query has invalid parameters", errors=errors)
    return q, limit


@routes.get("/v1/search/suggest")
@operation(
    "Suggestions for a search box: products and categories whose name (or a later word "
    "of it) starts with q, case-insensitively, most popular first",
    tags=("catalog",),
    parameters=(
        {"name": "q", "in": "query", "required": True,
         "description": "What was typed so far.",
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT}},
        IF_NONE_MATCH,
    ),
    headers=PUBLIC_HEADERS,
    responses={
        200: ("Suggestions (popularity: orders and views of active products)", SuggestionsOut),
        304: NOT_MODIFIED,
        422: ("q or limit out of range", None),
    },
)
@public_read
async def suggest(request: web.Request) -> web.Response:
    """The suggestions for ``q``, through the response cache; ETag of their bytes."""
    q, limit = _query(request)

    async def render() -> bytes:
        found = await request.app[SUGGESTIONS].suggest(q, limit=limit)
        return orjson.dumps({"suggestions": [s.to_json() for s in found]})

    # The raw q and limit: two spellings of one query are two entries, never a wrong one.
    key = "suggest:" + hashlib.sha256(f"{limit}|{q}".encode()).hexdigest()
    return await listing_answer(request, key, render)
