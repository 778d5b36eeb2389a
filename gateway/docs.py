"""Published descriptions: OpenAPI, the interactive docs page, AsyncAPI and event schemas."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway import keys
from gateway.openapi import build_openapi
from streams.errors import NotFound
from streams.registry import spec_for
from streams.schema import asyncapi_document, event_schema

API_VERSION = "1.0.0"
# Built on first request (routes are final by then) into a dict created at setup, so a
# started application is never mutated.
DOCUMENTS = web.AppKey("documents", dict)

DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Mercato API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
<noscript>The raw description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
</body></html>"""


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    documents = request.app[DOCUMENTS]
    if "openapi" not in documents:
        documents["openapi"] = build_openapi(request.app, title="Mercato", version=API_VERSION)
    return web.json_response(documents["openapi"])


async def docs_page(request: web.Request) -> web.Response:
    """GET /docs: Swagger UI over /openapi.json."""
    return web.Response(text=DOCS_HTML, content_type="text/html")


async def asyncapi_json(request: web.Request) -> web.Response:
    """GET /asyncapi.json: every topic and event, internal ones marked."""
    documents = request.app[DOCUMENTS]
    if "asyncapi" not in documents:
        documents["asyncapi"] = asyncapi_document(request.app[keys.SETTINGS].topic_prefix)
    return web.json_response(documents["asyncapi"])


async def event_schema_json(request: web.Request) -> web.Response:
    """GET /schemas/events/{type}/v{version}: one event's JSON Schema."""
    try:
        version = int(request.match_info["version"])
    except ValueError:
        raise NotFound("no such event schema") from None
    spec = spec_for(request.match_info["type"], version)
    if spec is None:
        raise NotFound("no such event schema")
    return web.json_response(event_schema(spec), content_type="application/schema+json")


STATIC = Path(__file__).parent / "static"


async def dashboard_page(request: web.Request) -> web.FileResponse:
    """GET /dashboard: the live page (sign in, follow channels)."""
    return web.FileResponse(STATIC / "dashboard.html")


def setup(app: web.Application) -> None:
    """Add the description routes and the live page."""
    app[DOCUMENTS] = {}
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_static("/static", STATIC, append_version=False)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs_page)
    app.router.add_get("/asyncapi.json", asyncapi_json)
    app.router.add_get("/schemas/events/{type}/v{version}", event_schema_json)
