"""A real browser for tests: Debian's chromium, headless, driven over the DevTools protocol.

Nothing downloads a browser build: the tests use ``chromium`` from PATH (the Debian
package, ``make browser``) and fail, saying why, when it is absent or does not start.
Each browser gets a fresh profile and flags that keep it off the network except for the
pages a test opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from mercato._procs import die_with_parent

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-default-browser-check", "--remote-debugging-port=0",
)
START_SECONDS = 30.0
CALL_SECONDS = 30.0


def chromium_path() -> str | None:
    """The chromium executable on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    """A DevTools call failed, or the page threw."""


class Page:
    """One page target: protocol calls, the events it sent, and page-side evaluation."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for raw in self._ws:
            message: dict[str, Any] = orjson.loads(raw)
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif "method" in message:
                self.events.append(message)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command; its result."""
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        # A text frame: DevTools drops the connection on a binary one.
        frame = orjson.dumps({"id": call_id, "method": method, "params": params}).decode()
        await self._ws.send(frame)
        message = await asyncio.wait_for(future, CALL_SECONDS)
        if "error" in message:
            raise BrowserError(f"{method}: {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, within: float = 45.0) -> Any:
        """Poll ``expression`` until it is truthy (bounded); its value."""
        deadline = time.monotonic() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {within}s (last value {value!r})")
            await asyncio.sleep(0.1)

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", f"loading {url}")

    def requests(self, keep: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[str]:
        """Every URL the page requested so far (``Network`` must be enabled)."""
        return [
            e["params"]["request"]["url"] for e in self.events
            if e["method"] == "Network.requestWillBeSent" and keep(e["params"]["request"])
        ]

    def responses(self, url_part: str) -> list[int]:
        """The statuses of the responses whose URL contains ``url_part``."""
        return [
            e["params"]["response"]["status"] for e in self.events
            if e["method"] == "Network.responseReceived"
            and url_part in e["params"]["response"]["url"]
        ]

    async def close(self) -> None:
        """Stop reading and close the protocol connection."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def chromium(executable: str, profile: Path) -> AsyncIterator[Page]:
    """A headless chromium with a fresh profile in ``profile``; its one page, attached."""
    log = _open_log(profile)
    # Its own process group, so its helpers (zygote, renderers) are reaped with it; and
    # killed with the test run if that dies first (Debian's launcher execs the browser).
    proc = await asyncio.create_subprocess_exec(
        executable, *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    page: Page | None = None
    try:
        port = await _devtools_port(proc, profile / "DevToolsActivePort")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/json/list") as response,
        ):
            targets = await response.json()
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        page = Page(await websockets.connect(url, max_size=None))
        for domain in ("Page", "Runtime", "Network", "Log"):
            await page.call(f"{domain}.enable")
        yield page
    finally:
        try:
            if page is not None:
                await page.close()
        finally:
            await _stop(proc)
            log.close()


def _open_log(profile: Path) -> BinaryIO:
    profile.mkdir(parents=True, exist_ok=True)
    return (profile.parent / "chromium.log").open("wb")


def _read_port(port_file: Path) -> int | None:
    """The port chromium wrote once it listens (the file is absent or empty before)."""
    with contextlib.suppress(FileNotFoundError):
        words = port_file.read_text().split()
        if words:
            return int(words[0])
    return None


async def _devtools_port(proc: asyncio.subprocess.Process, port_file: Path) -> int:
    deadline = time.monotonic() + START_SECONDS
    while (port := _read_port(port_file)) is None:
        if proc.returncode is not None:
            raise BrowserError(f"chromium exited early ({proc.returncode}){_said(port_file)}")
        if time.monotonic() > deadline:
            raise BrowserError(
                f"chromium did not open its DevTools port in {START_SECONDS}s{_said(port_file)}"
            )
        await asyncio.sleep(0.1)
    return port


def _said(port_file: Path) -> str:
    """The end of chromium's own log, so a browser that cannot start says why."""
    log = port_file.parent.parent / "chromium.log"
    with contextlib.suppress(OSError):
        tail = log.read_bytes()[-1500:].decode(errors="replace").strip()
        if tail:
            return f"; its log ({log}) ends:\n{tail}"
    return f"; see {log}"


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    # Helpers outlive a killed parent for a moment; the group is ours alone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
