"""Published descriptions: OpenAPI, the interactive docs page, AsyncAPI and event schemas."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from aiohttp import hdrs, web

from gateway import keys
from gateway.docs.openapi import build_openapi
from streams.errors import NotFound
from streams.registry import spec_for
from streams.schema import asyncapi_document, event_schema

API_VERSION = "1.0.0"
# Built on first request (routes are final by then) into a dict created at setup, so a
# started application is never mutated.
DOCUMENTS = web.AppKey("documents", dict)

# Swagger UI comes from the pinned swagger-ui-bundle-v2 wheel and is served by the gateway
# itself, so /docs works offline and loads nothing from a third-party host. Its files are
# byte-identical to swagger-ui-dist of the same version. Their hashes are pinned here: the
# browser checks the script's and stylesheet's (SRI), tests/unit/test_docs_page.py checks
# all three against the installed wheel; an upgrade changes the version and the hashes.
SWAGGER_UI_VERSION = "5.31.0"
SWAGGER_UI_PREFIX = f"/docs/swagger-ui-{SWAGGER_UI_VERSION}"
SWAGGER_UI_FILES: dict[str, str] = {
    "swagger-ui-bundle.js":
        "sha384-cxafBeQ+zYROeFafGFxtFbnp1ICqeS9mG7+f0WWSHzhnrUvwg9Za5CCw6wgrHA7K",
    "swagger-ui.css": "sha384-KX9Rx9vM1AmUNAn07bPAiZhFD4C8jdNgG6f5MRNvR+EfAxs2PmMFtUUazui7ryZQ",
    "favicon-32x32.png":
        "sha384-vCPruBEcPmxk2uv19KNJCkWttTDv8oQxBAzSuTndOepjsIyiKHSoLNlWOcQMpXdL",
}
# The URL names the version and the bytes are pinned: a browser may keep them for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
# The installed wheel's folder of those files, looked up at setup (not at import).
SWAGGER_UI = web.AppKey("swagger_ui", Path)


def _pinned(attribute: str, name: str) -> str:
    return f'{attribute}="{SWAGGER_UI_PREFIX}/{name}" integrity="{SWAGGER_UI_FILES[name]}"'


# No inline script: the bootstrap is /static/docs.js, so the page's CSP needs no hash.
DOCS_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mercato API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="{SWAGGER_UI_PREFIX}/favicon-32x32.png">
<link rel="stylesheet" {_pinned("href", "swagger-ui.css")}></head>
<body><div id="ui"></div>
<noscript>The raw description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script {_pinned("src", "swagger-ui-bundle.js")}></script>
<script src="/static/docs.js"></script>
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


async def swagger_ui_asset(request: web.Request) -> web.FileResponse:
    """GET /docs/swagger-ui-{version}/{name}: one of the files the docs page loads."""
    name = request.match_info["name"]
    # Only the files the page uses: the wheel also holds a demo page wired to a remote API.
    if name not in SWAGGER_UI_FILES:
        raise NotFound("no such docs asset")
    return web.FileResponse(
        request.app[SWAGGER_UI] / name, headers={hdrs.CACHE_CONTROL: IMMUTABLE}
    )


async def asyncapi_json(request: web.Request) -> web.Response:
    """GET /asyncapi.json: every topic and event, internal ones marked."""
    documents = request.app[DOCUMENTS]
    if "asyncapi" not in documents:
        documents["asyncapi"] = asyncapi_document(request.app[keys.SETTINGS])
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


# gateway/static, shipped as the gateway package's data (pyproject.toml).
STATIC = Path(__file__).parent.parent / "static"


async def dashboard_page(request: web.Request) -> web.FileResponse:
    """GET /dashboard: the live dashboard of a shop or of the marketplace."""
    # Revalidated on every load: a page open for days picks up an upgrade when reloaded.
    return web.FileResponse(STATIC / "dashboard.html", headers={hdrs.CACHE_CONTROL: "no-cache"})


def setup(app: web.Application) -> None:
    """Add the description routes and the live page."""
    app[DOCUMENTS] = {}
    bundle = files("swagger_ui_bundle") / f"vendor/swagger-ui-{SWAGGER_UI_VERSION}"
    app[SWAGGER_UI] = Path(str(bundle))
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_static("/static", STATIC, append_version=False)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs_page)
    app.router.add_get(SWAGGER_UI_PREFIX + "/{name}", swagger_ui_asset)
    app.router.add_get("/asyncapi.json", asyncapi_json)
    app.router.add_get("/schemas/events/{type}/v{version}", event_schema_json)
