"""The /docs and /dashboard pages load everything from the gateway: no third-party host."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from gateway import keys
from gateway.docs import pages as docs
from gateway.docs.pages import STATIC, SWAGGER_UI_FILES, SWAGGER_UI_PREFIX, SWAGGER_UI_VERSION
from gateway.http.headers import PAGE_CSP
from tests.support.edge import edge_app

Client = TestClient[web.Request, web.Application]
# What a CSP source may be when it names no host: a keyword, a hash, or a scheme-only source.
HOSTLESS = re.compile(r"'(self|none|sha(256|384|512)-[A-Za-z0-9+/=]+)'|data:")
# Types that nosniff lets a browser use as the asset (the .js one varies with mime.types).
ASSET_TYPES = {
    ".js": {"text/javascript", "application/javascript"}, ".css": {"text/css"},
    ".png": {"image/png"},
}


class Assets(HTMLParser):
    """The URLs a page loads (scripts, stylesheets, icons, images), with their integrity."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        url = named.get("src") if tag in ("script", "img") else None
        if tag == "link":
            url = named.get("href")
        if url is not None:
            self.found[url] = named.get("integrity")


def _app() -> web.Application:
    app = edge_app()
    app[keys.SETTINGS] = Settings(data_dir=Path("unused"), jwt_secret="x" * 48, topic_prefix="d.")
    docs.setup(app)
    return app


def _sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def test_the_page_policies_name_no_host() -> None:
    for path, csp in PAGE_CSP.items():
        for directive in csp.split(";"):
            _name, *sources = directive.split()
            for source in sources:
                assert HOSTLESS.fullmatch(source), f"{path}: {source!r} in {directive!r}"


async def _check_page(client: Client, path: str) -> dict[str, str | None]:
    page = await client.get(path)
    assert page.status == 200
    assert page.content_type == "text/html"
    assert page.headers["Content-Security-Policy"] == PAGE_CSP[path]
    parser = Assets()
    parser.feed(await page.text())
    assert parser.found, f"{path} loads nothing?"
    for url, integrity in parser.found.items():
        # Paths on the gateway itself: no scheme, no host, not protocol-relative.
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status == 200, url
        assert asset.content_type in ASSET_TYPES[Path(url).suffix], url
        body = await asset.read()
        if integrity is not None:
            assert integrity == _sri(body), url
        if url.endswith(".css"):
            # A stylesheet may pull in fonts and images: only inline data, never a host.
            for ref in re.findall(rb"url\(\s*['\"]?([^'\")]*)", body):
                assert ref.startswith(b"data:"), (url, ref[:60])
    return parser.found


async def test_docs_is_served_by_the_gateway_with_pinned_assets() -> None:
    async with TestClient(TestServer(_app())) as client:
        found = await _check_page(client, "/docs")
        pinned = [u for u in found if u.startswith(SWAGGER_UI_PREFIX + "/")]
        assert {Path(u).name for u in pinned} == set(SWAGGER_UI_FILES)
        for url in pinned:
            asset = await client.get(url)
            assert asset.headers["Cache-Control"] == docs.IMMUTABLE
        # The script and the stylesheet are checked by the browser too (SRI).
        assert all(found[u] for u in pinned if not u.endswith(".png"))
        # The description the page renders is the gateway's own.
        assert (await client.get("/openapi.json")).status == 200


async def test_dashboard_loads_only_the_gateway_s_files() -> None:
    async with TestClient(TestServer(_app())) as client:
        found = await _check_page(client, "/dashboard")
    assert set(found) == {"/static/dashboard.css", "/static/dashboard.js"}


@pytest.mark.parametrize(
    "name",
    # The wheel's demo page and bootstrap point at a remote petstore API: not served.
    ["index.html", "swagger-initializer.js", "oauth2-redirect.html", "swagger-ui.js.map",
     "..%2F__init__.py", "nothing.js"],
)
async def test_only_the_page_s_swagger_files_are_served(name: str) -> None:
    async with TestClient(TestServer(_app())) as client:
        response = await client.get(f"{SWAGGER_UI_PREFIX}/{name}")
        assert response.status == 404
        assert response.content_type == "application/problem+json"


def test_pinned_hashes_match_the_installed_swagger_ui() -> None:
    # Fails when the package is upgraded without updating gateway/docs/pages.py (or tampered with).
    folder = files("swagger_ui_bundle") / f"vendor/swagger-ui-{SWAGGER_UI_VERSION}"
    for name, integrity in SWAGGER_UI_FILES.items():
        assert _sri((folder / name).read_bytes()) == integrity, name


def test_static_files_name_no_third_party_host() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"\b(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
