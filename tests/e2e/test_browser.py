"""The web pages in a real browser (Debian's chromium) against a real gateway and worker.

The stack runs with access tokens that live a few seconds, so the dashboard has to renew
its session (refresh-token rotation) and resume its stream many times while the test
watches it: events must keep arriving, none lost and none shown twice, also after a time
when it could not refresh at all. Each test starts its own chromium with a fresh profile;
the dashboard tests save screenshots in their pytest tmp dir and print where.

Nothing here downloads a browser and nothing is skipped: without a chromium that starts
(``make browser`` installs Debian's), these tests fail and say why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from config import Settings
from mercato._procs import free_port
from mercato.admin import create_admin
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support import shop
from tests.support.browser import Page, chromium, chromium_path
from tests.support.files import eventually
from tests.support.gateways import running_gateway
from tests.support.processes import running_worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
TTL = 4  # seconds an access token lives here (15 minutes by default)
PASSWORD = "correct horse battery"
PATIENCE = 60  # seconds a wait may take: a browser, a worker and a gateway share the box
# Collects the page's CSP violations from before its first script runs.
CSP_WATCH = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation', "
    "(e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"
)
# The dashboard's activity feed: [position, channel, type, at, text] per item.
ROWS = (
    "[...document.querySelectorAll('#events li')].map((i) => "
    "[i.dataset.position, i.dataset.channel, i.dataset.type, i.dataset.at, i.textContent])"
)
SCREEN = {"width": 1440, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
# What an older gateway (no analytics) answers for the snapshot.
NO_ANALYTICS = {"type": "about:blank", "title": "Not Found", "status": 404,
                "detail": "no such route", "code": "NOT_FOUND"}


@dataclass
class Live:
    """The running stack: the gateway's base URL, its settings and the browser binary."""

    base: str
    browser: str
    settings: Settings


@pytest.fixture(scope="module")
def browser() -> str:
    """Debian's chromium; a failure, saying what to do, where there is none."""
    path = chromium_path()
    if path is None:
        pytest.fail(
            "chromium is not on PATH, so the browser tests cannot run: `make browser` "
            "installs Debian's (as root: apt-get install chromium); nothing downloads one"
        )
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
        await eventually(
            lambda: _is(b"Worker ready" in (logs / "worker.log").read_bytes()),
            "the worker's tables", PATIENCE,
        )
        async with running_gateway(settings, free_port(), logs / "gateway.log") as base:
            yield Live(base, browser, settings)


async def _is(condition: bool) -> bool:
    return condition


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

        await eventually(renewed, "the page renewing its session and its stream", PATIENCE)
        await _rename(http, email, "Ada Lovelace")
        await page.wait_for(f"{ROWS}.some((r) => r[4].includes('Ada Lovelace'))", "a later event")

        # Once more, across at least one more renewal and one more stream.
        sockets, refreshes = await _sockets_opened(page), len(page.responses("/v1/auth/refresh"))

        async def renewed_again() -> bool:
            return (len(page.responses("/v1/auth/refresh")) > refreshes
                    and await _sockets_opened(page) > sockets)

        await eventually(renewed_again, "another renewal", PATIENCE)
        await _rename(http, email, "Countess Ada")
        await page.wait_for(f"{ROWS}.some((r) => r[4].includes('Countess Ada'))", "the last event")

        # Refreshes cannot reach the gateway until the access token has expired and a new
        # stream was refused with 401. An event happens while the page has no stream; once
        # it can refresh again it must resume and show that event (nothing lost).
        await page.call("Network.setBlockedURLs", urls=["*/v1/auth/refresh"])
        await eventually(
            lambda: _is(401 in page.responses("/v1/stream-tickets")),
            "a stream ticket refused for an expired token", PATIENCE,
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


# ---- the dashboard of a shop -------------------------------------------------------

SIGN_IN = """(() => {{
  const form = document.getElementById('login');
  form.elements.email.value = {email!r};
  form.elements.password.value = {password!r};
  form.requestSubmit();
}})()"""
LIVE = "document.getElementById('conn').dataset.state === 'live'"
NO_WEBSOCKET = """window.__refused = 0;
window.WebSocket = class extends EventTarget {
  static OPEN = 1;
  constructor() {
    super();
    this.readyState = 3;
    window.__refused += 1;
    setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 50);
  }
  send() {}
  close() {}
};"""


def _tile(name: str) -> str:
    """The machine-readable value of one dashboard tile."""
    return f"document.querySelector('#tile-{name} .value').dataset.value"


async def _open_dashboard(page: Page, base: str, account: shop.Account, query: str = "") -> None:
    await page.call("Emulation.setDeviceMetricsOverride", **SCREEN)
    await page.call("Page.addScriptToEvaluateOnNewDocument", source=CSP_WATCH)
    await page.goto(f"{base}/dashboard{query}")
    await page.evaluate(SIGN_IN.format(email=account.email, password=shop.PASSWORD))
    await page.wait_for(LIVE, "the dashboard's live connection")


async def _screenshot(page: Page, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Save the whole page as PNG at ``path`` and say where (past pytest's capture)."""
    shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


def _sent_frames(page: Page) -> list[str]:
    return [e["params"]["response"]["payloadData"] for e in page.events
            if e["method"] == "Network.webSocketFrameSent"]


def _posted(page: Page, path: str) -> list[str]:
    return page.requests(lambda r: r["method"] == "POST" and r["url"].endswith(path))


async def test_seller_sees_their_orders_arrive_live(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with aiohttp.ClientSession(live.base) as http, chromium(
        live.browser, tmp_path / "profile"
    ) as page:
        seller = await shop.register(http, "seller", "Maya Okafor")
        buyer = await shop.register(http, "buyer", "Jon Berg")
        throw = await shop.product(seller, "Linen throw blanket", "25.00", "USD")
        await _open_dashboard(page, live.base, seller)
        assert await page.evaluate("document.getElementById('scope-label').textContent") == (
            "Your shop")
        # The visit is a client event; the page does not wait for (or need) its answer.
        await eventually(
            lambda: _is(bool(_posted(page, "/v1/analytics/events"))), "a page.viewed event",
            PATIENCE,
        )
        # It follows its own shop's channel and its own user channel.
        frames = _sent_frames(page)
        assert any(f'"dashboard:{seller.user_id}"' in f for f in frames), frames
        assert any(f'"user:{seller.user_id}"' in f for f in frames), frames

        placed = [await shop.order(buyer, throw, 2), await shop.order(buyer, throw, 1)]
        for order_id in placed:
            await shop.settled(buyer, order_id)
        # Each sale reaches the seller's feed live: one line per order, following its steps.
        for order_id in placed:
            await page.wait_for(
                f"{ROWS}.some((r) => r[2] === 'order.placed' && r[4].includes({order_id[-6:]!r}))",
                f"order {order_id} in the feed",
            )
            line = f"document.querySelector('#events li[data-order-id=\"{order_id}\"]')"
            await page.wait_for(f"{line}?.dataset.status === 'completed'", "the order's progress")
        # ... and the sale notifications, counted on the unread badge.
        await page.wait_for(
            "document.getElementById('unread').dataset.count === '2'", "two unread notifications"
        )
        await _screenshot(page, tmp_path / "seller-dashboard.png", capsys)
        # Reading them all clears the badge, and the gateway agrees.
        await page.evaluate("document.getElementById('read-all').click()")
        await page.wait_for(
            "document.getElementById('unread').dataset.count === '0'", "the badge cleared"
        )

        async def all_read() -> bool:
            counted = await seller.call("GET", "/v1/notifications/unread-count")
            return bool(counted["unread"] == 0)

        await eventually(all_read, "the notifications read on the gateway", 30)

        def reads(ending: str) -> list[int]:
            return [e["params"]["response"]["status"] for e in page.events
                    if e["method"] == "Network.responseReceived"
                    and e["params"]["response"]["url"].endswith(ending)]

        # One call reads them all, not one call per line.
        await eventually(
            lambda: _is(len(reads("/read-all")) == 1), "the page's read answered", PATIENCE
        )
        assert reads("/read-all") == [204]
        assert reads("/read") == []
        rows: list[list[str]] = await page.evaluate(ROWS)
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)), f"an event was shown twice: {rows}"
        assert await page.evaluate("window.__csp") == []
        assert _foreign(page, live.base) == []

        # A reload keeps the session (this tab's refresh token) and shows the same feed.
        await page.goto(f"{live.base}/dashboard")
        await page.wait_for(LIVE, "the live connection after a reload")
        assert await page.evaluate("document.getElementById('signin').hidden") is True
        await page.wait_for(f"{ROWS}.length === {len(rows)}", "the same feed after a reload")


async def test_tiles_and_chart_follow_the_orders(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with aiohttp.ClientSession(live.base) as http, chromium(
        live.browser, tmp_path / "profile"
    ) as page:
        seller = await shop.register(http, "seller", "Maya Okafor")
        buyer = await shop.register(http, "buyer", "Jon Berg")
        prices = {"USD": Decimal("25.00"), "EUR": Decimal("12.50")}
        products = {c: await shop.product(seller, f"Item in {c}", str(p), c)
                    for c, p in prices.items()}
        await _open_dashboard(page, live.base, seller)
        await page.wait_for(f"{_tile('orders')} === '0'", "the empty tiles of a new shop")

        # Orders in two currencies; the last one is cancelled after payment (a refund).
        lines = [("USD", 2), ("EUR", 1), ("USD", 1), ("EUR", 3)]
        revenue: shop.Money = {}
        refunds: shop.Money = {}
        for number, (currency, quantity) in enumerate(lines, 1):
            order_id = await shop.order(buyer, products[currency], quantity)
            await shop.settled(buyer, order_id)
            amount = prices[currency] * quantity
            shop.add(revenue, currency, amount)
            if number == len(lines):
                await buyer.call("POST", f"/v1/orders/{order_id}/cancel", expect=202)
                await shop.settled(buyer, order_id, frozenset({"refunded"}))
                shop.add(refunds, currency, amount)
            # The page follows each order as it happens, without a reload.
            await page.wait_for(f"{_tile('orders')} === '{number}'", f"order {number} on a tile")
        net = {c: revenue[c] - refunds.get(c, Decimal(0)) for c in revenue}
        await page.wait_for(f"{_tile('net')} === {shop.as_text(net)!r}", "the refund on a tile")
        assert await page.evaluate(_tile("revenue")) == shop.as_text(revenue)
        chart = "document.querySelector('#chart svg').dataset"
        assert await page.evaluate(f"{chart}.orders") == str(len(lines))
        # The page shows what the snapshot endpoint says.
        snapshot = await seller.call("GET", "/v1/analytics/dashboard")
        assert snapshot["today"]["orders"] == len(lines)
        assert shop.as_text({m["currency"]: Decimal(m["amount"])
                             for m in snapshot["today"]["revenue"]}) == shop.as_text(revenue)
        assert sum(b["orders"] for b in snapshot["lastHour"]) == len(lines)
        top = await page.evaluate("[...document.querySelectorAll('#top tr')].length")
        assert top == len(products)
        # Pushed, not polled: snapshots came over the page's WebSocket.
        received = [e["params"]["response"]["payloadData"] for e in page.events
                    if e["method"] == "Network.webSocketFrameReceived"]
        assert any('"analytics.snapshot"' in f for f in received)
        await _screenshot(page, tmp_path / "live-tiles.png", capsys)
        assert await page.evaluate("window.__csp") == []


async def test_admin_picks_a_seller(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with aiohttp.ClientSession(live.base) as http, chromium(
        live.browser, tmp_path / "profile"
    ) as page:
        seller = await shop.register(http, "seller", "Maya Okafor")
        await shop.product(seller, "Walnut desk organiser", "40.00", "USD")
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        assert await create_admin(
            live.settings, email=email, password=shop.PASSWORD, name="Operations") == 0
        admin = shop.Account(http, email, "")
        await _open_dashboard(page, live.base, admin)
        assert await page.evaluate("document.getElementById('scope-label').textContent") == (
            "Marketplace")
        assert any('"channel": "dashboard"' in f or '"channel":"dashboard"' in f
                   for f in _sent_frames(page))
        await page.wait_for(f"{_tile('orders')} !== ''", "the marketplace's numbers")
        await _screenshot(page, tmp_path / "admin-marketplace.png", capsys)
        option = f"#seller-picker option[value={seller.user_id!r}]"
        await page.wait_for(f"!!document.querySelector({option!r})", "the seller in the picker")
        await page.evaluate(f"""(() => {{
          const picker = document.getElementById('seller-picker');
          picker.value = {seller.user_id!r};
          picker.dispatchEvent(new Event('change'));
        }})()""")
        await page.wait_for(
            "document.getElementById('scope-label').textContent === 'Maya Okafor'",
            "the seller's scope",
        )
        await eventually(
            lambda: _is(any(f"dashboard:{seller.user_id}" in f for f in _sent_frames(page))),
            "a subscription to the seller's dashboard channel", PATIENCE,
        )
        asked = page.requests(lambda r: f"sellerId={seller.user_id}" in r["url"])
        assert any("/v1/analytics/dashboard?" in url for url in asked), asked
        await _screenshot(page, tmp_path / "admin-dashboard.png", capsys)


async def test_dashboard_falls_back_to_sse_and_resumes(live: Live, tmp_path: Path) -> None:
    async with aiohttp.ClientSession(live.base) as http, chromium(
        live.browser, tmp_path / "profile"
    ) as page:
        seller = await shop.register(http, "seller", "Maya Okafor")
        # A proxy that refuses WebSockets (DevTools cannot block them: the page gets a
        # WebSocket that never opens): the page must find its way over SSE.
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=NO_WEBSOCKET)
        await _open_dashboard(page, live.base, seller)
        assert await page.evaluate("document.getElementById('conn').dataset.transport") == "sse"
        await page.wait_for(f"{ROWS}.some((r) => r[2] === 'user.registered')", "the first event")
        # Across several renewals of the short-lived token (each ends the stream), a change
        # made meanwhile arrives exactly once.
        streams = len(page.responses("/v1/events"))
        await eventually(
            lambda: _is(len(page.responses("/v1/events")) >= streams + 2), "resumed streams",
            PATIENCE,
        )
        await seller.call("PATCH", "/v1/users/me", {"name": "Maya O."})
        await page.wait_for(f"{ROWS}.some((r) => r[4].includes('Maya O.'))", "a later event")
        rows: list[list[str]] = await page.evaluate(ROWS)
        assert [r[2] for r in rows].count("user.registered") == 1
        assert [r[2] for r in rows].count("user.profile_updated") == 1
        assert await page.evaluate("window.__refused") >= 2  # it did try a WebSocket first


async def _answer_404(page: Page, url_part: str) -> None:
    """Answer every request the page makes for ``url_part`` with a 404 (``Fetch`` paused it)."""
    body = base64.b64encode(json.dumps(NO_ANALYTICS).encode()).decode()
    seen = 0
    while True:
        for event in page.events[seen:]:
            if event["method"] == "Fetch.requestPaused" and url_part in (
                event["params"]["request"]["url"]
            ):
                await page.call(
                    "Fetch.fulfillRequest", requestId=event["params"]["requestId"],
                    responseCode=404, body=body, responseHeaders=[
                        {"name": "Content-Type", "value": "application/problem+json"}],
                )
        seen = len(page.events)
        await asyncio.sleep(0.05)


async def test_dashboard_without_analytics_says_so_and_keeps_its_feed(
    live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with aiohttp.ClientSession(live.base) as http, chromium(
        live.browser, tmp_path / "profile"
    ) as page:
        seller = await shop.register(http, "seller", "Maya Okafor")
        # A gateway without the analytics service answers the snapshot with 404.
        await page.call("Fetch.enable", patterns=[{"urlPattern": "*/v1/analytics/dashboard*"}])
        answering = asyncio.create_task(_answer_404(page, "/v1/analytics/dashboard"))
        try:
            await _open_dashboard(page, live.base, seller)
            await page.wait_for(
                "!document.getElementById('notice').hidden", "the no-analytics notice"
            )
            notice = await page.evaluate("document.getElementById('notice').textContent")
            assert "not available" in notice, notice
            assert "404" in notice, notice
            assert await page.evaluate(_tile("orders")) == ""
            await page.wait_for(f"{ROWS}.some((r) => r[2] === 'user.registered')", "the feed")
            await _screenshot(page, tmp_path / "no-analytics.png", capsys)
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering
        assert await page.evaluate("window.__csp") == []
