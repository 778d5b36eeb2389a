"""The edge middleware: headers on every response, the caller resolved once, metrics."""

from __future__ import annotations

import ast
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest

from config import Settings
from gateway import keys
from gateway.http.edge import prepare
from gateway.http.revocation import Revocations
from gateway.identity.auth import TokenService, authenticate
from gateway.ops.metrics import Metrics
from tests.support.edge import edge_app

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
SETTINGS = Settings(jwt_secret="edge-test-secret-edge-test-secret-0000")
EDGE_HEADERS = ("X-Request-ID", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
                "Content-Security-Policy", "Vary", "Server")


def test_handlers_that_stream_prepare_through_the_edge() -> None:
    # response.prepare(request) elsewhere would send a response without the edge's headers.
    offenders = []
    for path in GATEWAY.rglob("*.py"):
        if path.name == "edge.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "prepare"
            ):
                offenders.append(f"{path.relative_to(GATEWAY)}:{node.lineno}")
    assert offenders == [], "use gateway.http.edge.prepare(request, response)"


class _NoRedis:
    """Revocations that never need Redis: every user's value is cached up front."""


def _app() -> tuple[web.Application, TokenService, Revocations]:
    app = edge_app(SETTINGS)
    tokens = TokenService(SETTINGS)
    revocations = Revocations(_NoRedis(), prefix="t:", retain_seconds=60, cache_seconds=3600)  # type: ignore[arg-type]
    app[keys.TOKENS] = tokens
    app[keys.REVOCATIONS] = revocations
    app[keys.METRICS] = Metrics()

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"user": authenticate(request, tokens).user_id})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await prepare(request, response)
        await response.write(b"hello")
        return response

    async def varies(request: web.Request) -> web.Response:
        return web.Response(text="x", headers={"Vary": "Accept"})

    async def metrics(request: web.Request) -> web.Response:
        registry: CollectorRegistry = request.app[keys.METRICS].registry
        return web.Response(body=generate_latest(registry))

    app.router.add_get("/whoami", whoami)
    app.router.add_get("/stream", stream)
    app.router.add_get("/varies", varies)
    app.router.add_get("/things/{id}", whoami)
    app.router.add_get("/metrics", metrics)
    return app, tokens, revocations


async def test_every_edge_header_appears_once_also_on_streams() -> None:
    app, _tokens, _revocations = _app()
    async with TestClient(TestServer(app)) as client:
        for path in ("/stream", "/varies", "/nowhere"):
            response = await client.get(path)
            for name in EDGE_HEADERS:
                assert len(response.headers.getall(name)) == 1, (path, name)
        assert (await client.get("/varies")).headers["Vary"] == "Accept, Origin"
        assert (await client.get("/varies")).headers["Server"] == "mercato"  # no versions
        assert await (await client.get("/stream")).text() == "hello"


async def test_the_caller_is_verified_once_and_revocation_applies() -> None:
    app, tokens, revocations = _app()
    token = tokens.issue_access("ada", ["buyer"])
    revocations._remember("ada", 0)
    async with TestClient(TestServer(app)) as client:
        bearer = {"Authorization": f"Bearer {token}"}
        response = await client.get("/whoami", headers=bearer)
        assert response.status == 200
        assert await response.json() == {"user": "ada"}
        # Revoked after issue: the edge does not hand the principal over; authenticate refuses.
        revocations._remember("ada", time.time_ns() // 1_000_000 + 1000)
        refused = await client.get("/whoami", headers=bearer)
        assert refused.status == 401
        assert (await refused.json())["code"] == "TOKEN_REVOKED"
        bad = await client.get("/whoami", headers={"Authorization": "Bearer x.y.z"})
        assert (await bad.json())["code"] == "INVALID_TOKEN"
        # Lower-case scheme and stray spaces still parse.
        spaced = await client.get("/whoami", headers={"Authorization": f"bearer  {token} "})
        assert spaced.status == 401
        assert (await spaced.json())["code"] == "TOKEN_REVOKED"


async def test_metrics_count_by_route_template() -> None:
    app, tokens, revocations = _app()
    revocations._remember("ada", 0)
    bearer = {"Authorization": f"Bearer {tokens.issue_access('ada', ['buyer'])}"}
    async with TestClient(TestServer(app)) as client:
        for thing in ("a", "b", "c"):
            assert (await client.get(f"/things/{thing}", headers=bearer)).status == 200
        await client.get("/nowhere")
        text = await (await client.get("/metrics")).text()
    samples: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("mercato_http_request"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    things = 'method="GET",route="/things/{id}"'
    assert samples[f"mercato_http_requests_total{{{things},status=\"200\"}}"] == 3
    assert samples['mercato_http_requests_total{method="GET",route="unmatched",status="404"}'] == 1
    assert samples[f'mercato_http_request_duration_seconds_bucket{{le="+Inf",{things}}}'] == 3
    assert samples[f"mercato_http_request_duration_seconds_count{{{things}}}"] == 3


async def test_unmatched_requests_share_one_metrics_row() -> None:
    app, _tokens, _revocations = _app()
    async with TestClient(TestServer(app)) as client:
        for n in range(50):
            await client.get(f"/scan/{n}")
            await client.request("PROPFIND", f"/pot/{n}")
        text = await (await client.get("/metrics")).text()
    rows = [line for line in text.splitlines() if line.startswith("mercato_http_requests_total")]
    assert 'mercato_http_requests_total{method="GET",route="unmatched",status="404"} 50.0' in rows
    assert any('method="OTHER",route="unmatched"' in row for row in rows)
    assert len(app[keys.METRICS].http._rows) <= 4  # GET 404, OTHER 4xx, the /metrics GET 200


async def test_probes_are_access_logged_only_when_everything_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503)

    seen: dict[str, list[str]] = {}
    for policy in ("errors", "all"):
        app = edge_app(dataclasses.replace(SETTINGS, access_log=policy))
        app.router.add_get("/health/ready", unavailable)
        app.router.add_get("/busy", unavailable)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mercato.access"):
            async with TestClient(TestServer(app)) as client:
                for path in ("/health/ready", "/busy"):
                    assert (await client.get(path)).status == 503
        seen[policy] = [r.getMessage() for r in caplog.records if r.name == "mercato.access"]
    assert seen["errors"] == ["GET /busy 503"]
    assert seen["all"] == ["GET /health/ready 503", "GET /busy 503"]
