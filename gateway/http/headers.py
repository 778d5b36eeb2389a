"""Security headers and CORS, in one place, on every response the gateway sends."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from config import Settings
from gateway.docs.pages import DOCS_HTML
from gateway.http.caching import is_public
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


# The HTML pages get what they load, from the gateway only: no third-party host, no inline
# script or style. /docs: Swagger UI's script and stylesheet (served under /docs/, see
# gateway/docs/pages.py) and its bootstrap /static/docs.js; swagger-ui draws icons as data:
# images and styles elements through the DOM, which style-src does not govern.
# /dashboard: its own /static scripts (ES modules) and stylesheet; its sign-in form is
# sent by script, never by the browser (form-action 'none': without the script, a
# password must not end up in a URL). An inline script added to either page needs its
# hash here (tests/unit/test_security.py checks).
PAGE_CSP: dict[str, str] = {
    "/docs": " ".join([f"{_PAGE_BASE}; script-src 'self'", *inline_script_hashes(DOCS_HTML)])
    + "; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'",
    "/dashboard": f"{_PAGE_BASE}; script-src 'self'; style-src 'self'; img-src 'self' data:"
    "; connect-src 'self'; form-action 'none'",
}
HSTS = "max-age=63072000; includeSubDomains"
# Responses that carry credentials (tokens, tickets) must not be stored by any cache.
NO_STORE_PREFIXES = ("/v1/auth/", "/v1/stream-tickets")
# Reads under /v1/ answer for their caller unless marked public (gateway.http.caching):
# no shared cache may keep them, and no browser either (a shared computer's next user).
PRIVATE_READ = "private, no-store"

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
_READS = frozenset({"GET", "HEAD"})


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
    """Security and CORS headers for every response, and answers to CORS preflights."""

    def __init__(self, settings: Settings) -> None:
        self.origins = Origins.from_settings(settings)
        fixed = [
            # Instead of aiohttp's default, which names the Python and aiohttp versions.
            ("Server", "mercato"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ]
        if settings.tls_terminated or settings.env == "prod":
            fixed.append(("Strict-Transport-Security", HSTS))
        # Unless every origin is allowed, the answer depends on Origin: caches must key on it.
        self._vary_origin = not self.origins.any
        vary = [("Vary", "Origin")] if self._vary_origin else []
        # Built once: the headers of an API response (without and with no-store), and of
        # each HTML page.
        api = [*fixed, ("Content-Security-Policy", API_CSP), *vary]
        self._api = CIMultiDictProxy(CIMultiDict(api))
        self._api_no_store = CIMultiDictProxy(CIMultiDict([*api, ("Cache-Control", "no-store")]))
        self._api_private = CIMultiDictProxy(CIMultiDict([*api, ("Cache-Control", PRIVATE_READ)]))
        self._pages = {
            path: CIMultiDictProxy(CIMultiDict([*fixed, ("Content-Security-Policy", csp), *vary]))
            for path, csp in PAGE_CSP.items()
        }
        # Fixed-path routes get the same block on every request: remembered per route.
        self._by_route: dict[web.AbstractRoute, CIMultiDictProxy[str]] = {}

    @property
    def api(self) -> CIMultiDictProxy[str]:
        """The headers of an API response, for answers given before any route is known."""
        return self._api

    def block(self, request: web.Request) -> CIMultiDictProxy[str]:
        """The headers every response to ``request`` carries (see ``apply``)."""
        route = request.match_info.route
        block = self._by_route.get(route)
        if block is None:
            path = request.path
            if path in self._pages:
                block = self._pages[path]
            elif path.startswith(NO_STORE_PREFIXES):
                block = self._api_no_store
            elif (
                request.method in _READS and path.startswith("/v1/")
                and not is_public(route.handler)
            ):
                block = self._api_private
            else:
                block = self._api
            if isinstance(route.resource, web.PlainResource):
                self._by_route[route] = block
        return block

    def apply(
        self, request: web.Request, headers: CIMultiDict[str], block: CIMultiDictProxy[str]
    ) -> None:
        """Add ``block`` (``block(request)``, maybe with more headers) and CORS's to a response.

        These headers belong to the edge: handlers do not set them (they are appended
        from a prebuilt block, the cheapest way to add several). ``Vary`` is one a
        handler may set too (``Origin`` is then appended to its value), and
        ``Cache-Control`` the other (the handler's wins).
        """
        vary = self._vary_origin and hdrs.VARY in headers
        if vary:
            headers[hdrs.VARY] = headers[hdrs.VARY] + ", Origin"
        # A handler's own Cache-Control (a stream's no-cache, a download's) is kept.
        own_control = hdrs.CACHE_CONTROL in block and hdrs.CACHE_CONTROL in headers
        if vary or own_control:
            skip = {hdrs.VARY} if vary else set()
            if own_control:
                skip.add(hdrs.CACHE_CONTROL)
            headers.extend((k, v) for k, v in block.items() if k not in skip)
        else:
            headers.extend(block)
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None:
            allowed = self.origins.allow(origin)
            if allowed is not None:
                headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed
                headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS

    def preflight(self, request: web.Request) -> web.Response | None:
        """The answer to a CORS preflight (204, or ``Forbidden`` for another origin).

        None when ``request`` is not a preflight (a plain ``OPTIONS`` goes to routing).
        """
        headers = request.headers
        if "Origin" not in headers or "Access-Control-Request-Method" not in headers:
            return None
        if self.origins.allow(headers["Origin"]) is None:
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
