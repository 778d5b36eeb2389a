"""Security headers and CORS, in one place, on every response the gateway sends."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from config import Settings
from gateway.docs import DOCS_HTML
from streams.errors import Forbidden

# API responses are data: they may load nothing and be framed by nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
_PAGE_BASE = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def inline_script_hashes(html: str) -> list[str]:
    """CSP ``'sha256-…'`` sources for the inline ``<script>`` blocks of ``html``."""
    blocks = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in blocks
    ]


# The HTML pages get what they load, nothing more. /docs: swagger-ui from unpkg plus one
# inline bootstrap script, allowed by hash (swagger-ui styles elements inline, and draws
# icons as data: images). /dashboard: its own /static script and stylesheet only; an inline
# script added there needs its hash here (tests/unit/test_security.py checks).
PAGE_CSP: dict[str, str] = {
    "/docs": f"{_PAGE_BASE}; script-src https://unpkg.com "
    + " ".join(inline_script_hashes(DOCS_HTML))
    + "; style-src https://unpkg.com 'unsafe-inline'; img-src 'self' data: https://unpkg.com"
    "; connect-src 'self'; form-action 'none'",
    "/dashboard": f"{_PAGE_BASE}; script-src 'self'; style-src 'self'; img-src 'self' data:"
    "; connect-src 'self'; form-action 'self'",
}
HSTS = "max-age=63072000; includeSubDomains"
# Responses that carry credentials (tokens, tickets) must not be stored by any cache.
NO_STORE_PREFIXES = ("/v1/auth/", "/v1/stream-tickets")

DEV_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, Last-Event-ID, "
    "X-Request-ID"
)
EXPOSE_HEADERS = (
    "X-Request-ID, ETag, Location, Retry-After, Content-Range, RateLimit, RateLimit-Policy, "
    "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
)
PREFLIGHT_MAX_AGE = "600"


class Origins:
    """The CORS allow-list: exact origins, ``scheme://host:*`` (any port), or ``*``."""

    def __init__(self, items: Iterable[str]) -> None:
        cleaned = [item.strip().rstrip("/") for item in items if item.strip()]
        self.any = "*" in cleaned
        self._exact = frozenset(i for i in cleaned if i != "*" and not i.endswith(":*"))
        self._any_port = tuple(i[:-1] for i in cleaned if i.endswith(":*"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Origins:
        """``MERCATO_CORS_ORIGINS``, or localhost origins in dev and none in prod."""
        items = settings.cors_origins.split(",")
        if not settings.cors_origins.strip() and settings.env == "dev":
            items = list(DEV_ORIGINS)
        return cls(items)

    def allow(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None if refused."""
        if self.any:
            return "*"
        if origin in self._exact:
            return origin
        for prefix in self._any_port:
            port = origin[len(prefix):]
            if origin.startswith(prefix) and port.isascii() and port.isdigit():
                return origin
        return None


class EdgeHeaders:
    """Adds security and CORS headers to responses and answers CORS preflights."""

    def __init__(self, settings: Settings) -> None:
        self.origins = Origins.from_settings(settings)
        self._hsts = settings.tls_terminated or settings.env == "prod"

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare``: runs for every response, errors and streams included."""
        headers = response.headers
        path = request.path
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", PAGE_CSP.get(path, API_CSP))
        if self._hsts:
            headers["Strict-Transport-Security"] = HSTS
        if path.startswith(NO_STORE_PREFIXES):
            headers["Cache-Control"] = "no-store"
        if not self.origins.any:
            # The answer depends on Origin, so shared caches must key on it.
            vary = headers.get("Vary")
            headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        origin = request.headers.get("Origin")
        if origin is not None:
            allowed = self.origins.allow(origin)
            if allowed is not None:
                headers["Access-Control-Allow-Origin"] = allowed
                headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS

    def preflight_middleware(self) -> Middleware:
        """Middleware answering ``OPTIONS`` preflights with 204 (or 403 for other origins)."""
        origins = self.origins

        @web.middleware
        async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
            headers = request.headers
            if (
                request.method != "OPTIONS"
                or "Origin" not in headers
                or "Access-Control-Request-Method" not in headers
            ):
                return await handler(request)
            if origins.allow(headers["Origin"]) is None:
                raise Forbidden(
                    "this origin may not call the API from a browser; ask for it to be "
                    "added to MERCATO_CORS_ORIGINS",
                    code="ORIGIN_NOT_ALLOWED",
                )
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                    "Vary": "Access-Control-Request-Method, Access-Control-Request-Headers",
                },
            )

        return preflight
