"""Security headers and CORS rules, without services."""

from __future__ import annotations

import dataclasses
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from gateway.docs.pages import DOCS_HTML, STATIC
from gateway.http.caching import public_read
from gateway.http.headers import API_CSP, PAGE_CSP, Origins, inline_script_hashes
from tests.support.edge import edge_app

DEV = Settings()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost", None),
        ("http://localhost:3000.evil.example", None),
        ("http://localhost:\uff13\uff10\uff10\uff10", None),  # full-width digits
        ("https://localhost:3000", None),
        ("null", None),
    ],
)
def test_dev_allows_localhost_origins_only(origin: str, allowed: str | None) -> None:
    assert Origins.from_settings(DEV).allow(origin) == allowed


def test_prod_allows_only_configured_origins() -> None:
    prod = dataclasses.replace(DEV, env="prod", jwt_secret="s" * 40)
    assert Origins.from_settings(prod).allow("http://localhost:3000") is None
    shop = dataclasses.replace(prod, cors_origins="https://shop.example, https://admin.example/")
    assert Origins.from_settings(shop).allow("https://admin.example") == "https://admin.example"
    assert Origins.from_settings(shop).allow("https://evil.example") is None
    assert Origins(["*"]).allow("https://anyone.example") == "*"


def test_pages_allow_their_inline_scripts_and_nothing_else_inline() -> None:
    for source in inline_script_hashes(DOCS_HTML):
        assert source in PAGE_CSP["/docs"]
    dashboard = (STATIC / "dashboard.html").read_text()
    # An inline script or style attribute on the dashboard needs a CSP change here first.
    for source in inline_script_hashes(dashboard):
        assert source in PAGE_CSP["/dashboard"]
    assert not re.search(r"\sstyle=|\son[a-z]+=", dashboard)
    assert "'unsafe-inline'" not in PAGE_CSP["/dashboard"]


def _app(settings: Settings) -> web.Application:
    app = edge_app(settings)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("internal detail")

    @public_read
    async def shared(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, headers={"Cache-Control": "public, max-age=5"})

    app.router.add_get("/v1/things", ok)
    app.router.add_get("/v1/public", shared)
    app.router.add_post("/v1/auth/login", ok)
    app.router.add_get("/docs", ok)
    app.router.add_get("/boom", boom)
    return app


async def test_every_response_carries_the_security_headers() -> None:
    async with TestClient(TestServer(_app(DEV))) as client:
        for method, path in [("GET", "/v1/things"), ("GET", "/nowhere"), ("GET", "/boom")]:
            response = await client.request(method, path)
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Content-Security-Policy"] == API_CSP
            assert "Strict-Transport-Security" not in response.headers
            assert "X-Request-ID" in response.headers
        docs = await client.get("/docs")
        assert docs.headers["Content-Security-Policy"] == PAGE_CSP["/docs"]
        login = await client.post("/v1/auth/login")
        assert login.headers["Cache-Control"] == "no-store"
        # A /v1 read not marked public answers for its caller only (#17) ...
        assert (await client.get("/v1/things")).headers["Cache-Control"] == "private, no-store"
        # ... and a public one keeps what its handler says; the edge adds none of its own.
        public = await client.get("/v1/public")
        assert public.headers.getall("Cache-Control") == ["public, max-age=5"]
        assert "Cache-Control" not in (await client.get("/docs")).headers


async def test_hsts_only_when_tls_is_terminated_in_front() -> None:
    settings = dataclasses.replace(DEV, tls_terminated=True)
    async with TestClient(TestServer(_app(settings))) as client:
        response = await client.get("/v1/things")
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_cors_preflight_and_actual_requests() -> None:
    origin = "http://localhost:5173"
    async with TestClient(TestServer(_app(DEV))) as client:
        preflight = await client.options(
            "/v1/things",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, if-match",
            },
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
        allowed = preflight.headers["Access-Control-Allow-Headers"]
        for name in ("Authorization", "Idempotency-Key", "If-Match", "Last-Event-ID"):
            assert name in allowed
        assert int(preflight.headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in preflight.headers["Vary"]

        actual = await client.get("/v1/things", headers={"Origin": origin})
        assert actual.headers["Access-Control-Allow-Origin"] == origin
        exposed = actual.headers["Access-Control-Expose-Headers"]
        for name in ("X-Request-ID", "ETag", "Location", "Retry-After", "RateLimit"):
            assert name in exposed

        evil = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        refused = await client.options("/v1/things", headers=evil)
        assert refused.status == 403
        assert refused.content_type == "application/problem+json"
        assert (await refused.json())["code"] == "ORIGIN_NOT_ALLOWED"
        assert "Access-Control-Allow-Origin" not in refused.headers
        other = await client.get("/v1/things", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
