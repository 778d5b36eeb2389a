"""The web pages in a real browser (Debian's chromium) against a real gateway and worker.

The stack runs with access tokens that live a few seconds, so the dashboard has to renew
its session (refresh-token rotation) and resume its stream many times while the test
watches it: events must keep arriving, none lost and none shown twice, also after a time
when it could not refresh at all. Each test starts its own chromium with a fresh profile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mercato._procs import free_port
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.browser import Page, chromium, chromium_path
from tests.support.gateways import running_gateway
from tests.support.processes import running_worker

# Skipped, saying why, where no chromium is installed: nothing here downloads a browser.
# Decided at collection, so a machine without it does not start the stack for nothing.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        chromium_path() is None,
        reason="chromium is not on PATH (Debian: apt-get install chromium, or make browser); "
        "the browser tests need a real browser",
    ),
]
TTL = 4  # seconds an access token lives here (15 minutes by default)
PASSWORD = "correct horse battery"
# Collects the page's CSP violations from before its first script runs.
CSP_WATCH = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation', "
    "(e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"
)
# The dashboard's event table: [position, channel, type, at, data] per row.
ROWS = (
    "[...document.querySelectorAll('#events tr')]"
    ".map((r) => [...r.cells].map((c) => c.textContent))"
)


@dataclass
class Live:
    """The running stack: the gateway's base URL and the browser binary."""

    base: str
    browser: str


@pytest.fixture(scope="module")
def browser() -> str:
    """Debian's chromium (the module is skipped without it)."""
    path = chromium_path()
    assert path is not None
    return path


@pytest.fixture(scope="module")
async def live(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory, browser: str
) -> AsyncIterator[Live]:
    """A worker and a gateway process whose access tokens expire after ``TTL`` seconds."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("browser")), access_token_ttl=TTL
    )
    await ensure_topics(settings)
    logs = settings.data_dir
    async with running_worker(settings, logs / "worker.log"):
        await _eventually(
            lambda: _is(b"Worker ready" in (logs / "worker.log").read_bytes()),
            "the worker's tables", 60,
        )
        async with running_gateway(settings, free_port(), logs / "gateway.log") as base:
            yield Live(base, browser)


async def _is(condition: bool) -> bool:
    return condition


async def _eventually(probe: Callable[[], Awaitable[Any]], what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while not (value := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.2)
    return value


async def _register(http: aiohttp.ClientSession, email: str) -> None:
    body = {"email": email, "password": PASSWORD, "name": "Ada"}
    for _ in range(3):  # a worker still settling answers 503; nothing was applied then
        async with http.post("/v1/auth/register", json=body) as response:
            if response.status != 503:
                assert response.status == 201, await response.text()
                return
        await asyncio.sleep(1)
    raise AssertionError("registration kept answering 503")


async def _rename(http: aiohttp.ClientSession, email: str, name: str) -> None:
    """Change the profile as the user (its own fresh session): one event on user:{id}."""
    async with http.post("/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        token = (await r.json())["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    async with http.patch("/v1/users/me", json={"name": name}, headers=headers) as r:
        assert r.status == 200, await r.text()


def _foreign(page: Page, base: str) -> list[str]:
    """The URLs the page asked for that are neither the gateway's nor inline data."""
    return [u for u in page.requests() if not u.startswith((base + "/", "data:"))]


def _sockets(page: Page) -> list[str]:
    return [e["params"]["url"] for e in page.events if e["method"] == "Network.webSocketCreated"]


async def _sockets_opened(page: Page) -> int:
    return len(_sockets(page))


async def test_dashboard_renews_its_session_and_loses_no_event(
    live: Live, tmp_path: Path
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    async with aiohttp.ClientSession(live.base) as http, chromium(
        live.browser, tmp_path / "profile"
    ) as page:
        await _register(http, email)
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=CSP_WATCH)
        await page.goto(live.base + "/dashboard")
        await page.evaluate(
            f"""(() => {{
              const form = document.getElementById('login');
              form.elements.email.value = {email!r};
              form.elements.password.value = {PASSWORD!r};
              form.requestSubmit();
            }})()"""
        )
        signed_in = time.monotonic()
        # The stream replays the channel from the start: the registration comes first.
        await page.wait_for(f"{ROWS}.some((r) => r[2] === 'user.registered')", "the first event")

        # Outlive the first token (and the stream it opened) several times over.
        async def renewed() -> bool:
            refreshed = page.responses("/v1/auth/refresh")
            return (time.monotonic() - signed_in > 2 * TTL and len(refreshed) >= 2
                    and await _sockets_opened(page) >= 2)

        await _eventually(renewed, "the page renewing its session and its stream")
        await _rename(http, email, "Ada Lovelace")
        await page.wait_for(f"{ROWS}.some((r) => r[4].includes('Ada Lovelace'))", "a later event")

        # Once more, across at least one more renewal and one more stream.
        sockets, refreshes = await _sockets_opened(page), len(page.responses("/v1/auth/refresh"))

        async def renewed_again() -> bool:
            return (len(page.responses("/v1/auth/refresh")) > refreshes
                    and await _sockets_opened(page) > sockets)

        await _eventually(renewed_again, "another renewal")
        await _rename(http, email, "Countess Ada")
        await page.wait_for(f"{ROWS}.some((r) => r[4].includes('Countess Ada'))", "the last event")

        # Refreshes cannot reach the gateway until the access token has expired and a new
        # stream was refused with 401. An event happens while the page has no stream; once
        # it can refresh again it must resume and show that event (nothing lost).
        await page.call("Network.setBlockedURLs", urls=["*/v1/auth/refresh"])
        await _eventually(
            lambda: _is(401 in page.responses("/v1/stream-tickets")),
            "a stream ticket refused for an expired token",
        )
        await _rename(http, email, "Ada, Countess of Lovelace")
        await page.call("Network.setBlockedURLs", urls=[])
        await page.wait_for(
            f"{ROWS}.some((r) => r[4].includes('Ada, Countess of Lovelace'))", "a later event"
        )

        rows: list[list[str]] = await page.evaluate(ROWS)
        positions = [r[0] for r in rows]
        assert len(positions) == len(set(positions)), f"an event was shown twice: {rows}"
        types = sorted(r[2] for r in rows)
        assert types.count("user.registered") == 1
        assert types.count("user.profile_updated") == 3
        # Every refresh rotated the pair and succeeded: the page never fell back to sign-in.
        assert set(page.responses("/v1/auth/refresh")) == {200}
        assert await page.evaluate("document.getElementById('signin').hidden") is True
        assert await page.evaluate("window.__csp") == []
        assert _foreign(page, live.base) == []
        ws_base = live.base.replace("http://", "ws://", 1) + "/v1/ws?"
        assert all(url.startswith(ws_base) for url in _sockets(page))


async def test_docs_renders_from_the_gateway_alone(live: Live, tmp_path: Path) -> None:
    async with chromium(live.browser, tmp_path / "profile") as page:
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=CSP_WATCH)
        await page.goto(live.base + "/docs")
        title = await page.wait_for(
            "document.querySelector('.swagger-ui .info .title')?.textContent", "Swagger UI"
        )
        assert title.startswith("Mercato")
        # Open a few operations (all of them is minutes of rendering): examples render too.
        await page.evaluate(
            "[...document.querySelectorAll('.opblock-summary-control')].slice(0, 3)"
            ".forEach((b) => b.click())"
        )
        opened = "document.querySelectorAll('.opblock.is-open .highlight-code').length >= 3"
        await page.wait_for(opened, "the operations")
        assert await page.evaluate("window.__csp") == []
        assert _foreign(page, live.base) == []
        assert set(page.responses(live.base)) == {200}
