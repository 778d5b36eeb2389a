"""HTTP caching of public reads: validators, ``304 Not Modified`` and ``Cache-Control``.

A public read (the same answer for every caller) carries an ``ETag`` and
``Cache-Control: public, max-age=N, stale-while-revalidate=M`` with ``N`` per route
from settings; ``If-None-Match`` naming its tag is answered 304 with no body. Handlers
mark themselves with ``@public_read`` so the edge leaves their ``Cache-Control`` alone;
every other ``GET`` under ``/v1/`` is ``private, no-store`` (``gateway.http.headers``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from gateway.docs.openapi import ETAG_HEADER, header_spec

H = TypeVar("H", bound=Callable[..., Any])
PUBLIC_ATTR = "__mercato_public_read__"


def public_read(handler: H) -> H:
    """Mark ``handler`` as answering the same to every caller (the edge keeps it public)."""
    setattr(handler, PUBLIC_ATTR, True)
    return handler


def is_public(handler: object) -> bool:
    """Whether ``handler`` was marked with ``public_read``."""
    return bool(getattr(handler, PUBLIC_ATTR, False))


def cache_control(max_age: int, stale_while_revalidate: int) -> str:
    """The ``Cache-Control`` value of a public read; 0 keeps it revalidated every time."""
    if max_age <= 0:
        return "public, no-cache"
    return f"public, max-age={max_age}, stale-while-revalidate={stale_while_revalidate}"


def body_etag(body: bytes) -> str:
    """A strong entity tag of exactly these bytes (lists and documents without versions)."""
    return f'"{hashlib.sha256(body).hexdigest()[:24]}"'


def not_modified(request: web.Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for GET)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


def public_answer(
    request: web.Request, body: bytes | Any, *, control: str, etag: str | None = None
) -> web.Response:
    """200 with ``body`` (JSON bytes, or a value to serialize), or 304 if the client has it.

    Without ``etag`` the tag is the body's digest, so any change of the answer changes it.
    """
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    tag = etag or body_etag(raw)
    headers = {"ETag": tag, "Cache-Control": control}
    if not_modified(request, tag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=raw, content_type="application/json", headers=headers)


CACHE_CONTROL_HEADER = header_spec(
    "public, max-age=N, stale-while-revalidate=M (N per route, from settings).", required=True
)
# What a public read declares in OpenAPI: its request validator and the two response headers.
IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match", "in": "header", "required": False,
    "description": "ETags of copies the client has; a match is answered 304 with no body.",
    "schema": {"type": "string"},
}
PUBLIC_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    200: {"ETag": ETAG_HEADER, "Cache-Control": CACHE_CONTROL_HEADER},
    304: {"ETag": ETAG_HEADER, "Cache-Control": CACHE_CONTROL_HEADER},
}
NOT_MODIFIED = ("Not modified since the ETag sent (If-None-Match)", None)
