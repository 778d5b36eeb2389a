"""Dashboard push latency: an accepted request -> the first snapshot on ``dashboard`` counting it.

One WebSocket client with an admin token follows ``dashboard`` (the marketplace scope).
A sample posts one thing over REST and waits for the first ``analytics.snapshot`` frame
whose numbers include it: a client event (``POST /v1/analytics/events``, one
``product.viewed``) must raise ``today.productViews`` to the next count, an order
(``POST /v1/orders``) must raise ``today.orders`` once it is paid. Latency runs from the
``202`` to that frame's arrival. Snapshots are built by a timer once a second, so each
sample first sleeps a random fraction of a second: back-to-back samples would otherwise
always start just after a push and always wait the longest.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from bench.common import BenchError

Predicate = Callable[[dict[str, Any]], bool]
SAMPLE_LIMIT = 30.0


class DashboardWatch:
    """The latest marketplace snapshot pushed to one WebSocket client, and waiters on it."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.frames = 0
        self._waiters: list[tuple[Predicate, asyncio.Future[int]]] = []

    def wait_for(self, predicate: Predicate) -> asyncio.Future[int]:
        """A future set to the arrival time (perf_counter_ns) of the first matching snapshot."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.latest is not None and predicate(self.latest):
            future.set_result(time.perf_counter_ns())
        else:
            self._waiters.append((predicate, future))
        return future

    def _arrived(self, snapshot: dict[str, Any], at: int) -> None:
        self.latest = snapshot
        self.frames += 1
        pending = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(snapshot):
                future.set_result(at)
            else:
                pending.append((predicate, future))
        self._waiters = pending

    async def follow(self, session: aiohttp.ClientSession, url: str, token: str,
                     ready: asyncio.Event) -> None:
        """Subscribe to ``dashboard`` and record every snapshot until cancelled."""
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send_json({"type": "subscribe", "channel": "dashboard"})
            async for message in ws:
                at = time.perf_counter_ns()
                frame = message.json()
                if frame["type"] == "subscribed":
                    ready.set()
                elif frame["type"] == "error":
                    raise BenchError(f"the dashboard subscription was refused: {frame}")
                elif frame["type"] == "event" and frame["event"]["type"] == "analytics.snapshot":
                    self._arrived(frame["event"]["data"], at)


@contextlib.asynccontextmanager
async def watching(session: aiohttp.ClientSession, base: str, admin_token: str
                   ) -> AsyncIterator[DashboardWatch]:
    """A subscribed ``DashboardWatch``, its task cancelled on exit."""
    watch = DashboardWatch()
    ready = asyncio.Event()
    task = asyncio.create_task(watch.follow(
        session, base.replace("http://", "ws://") + "/v1/ws", admin_token, ready))
    try:
        confirmed = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait([task, confirmed], timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        confirmed.cancel()
        if task in done:
            task.result()  # raises what ended it
        if not ready.is_set():
            raise BenchError("the dashboard subscription was not confirmed within 30s")
        yield watch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def at_least(count: Callable[[dict[str, Any]], int], target: int) -> Predicate:
    """Whether a snapshot's ``count`` has reached ``target``."""
    return lambda snapshot: count(snapshot) >= target


def views(snapshot: dict[str, Any]) -> int:
    """Product views counted today in a snapshot."""
    return int(snapshot["today"]["productViews"])


def orders(snapshot: dict[str, Any]) -> int:
    """Paid orders counted today in a snapshot."""
    return int(snapshot["today"]["orders"])


async def _timed(watch: DashboardWatch, predicate: Predicate, post: Callable[[], Any],
                 what: str) -> int:
    arrived = watch.wait_for(predicate)
    try:
        await post()
        accepted = time.perf_counter_ns()
        try:
            seen = await asyncio.wait_for(asyncio.shield(arrived), SAMPLE_LIMIT)
        except TimeoutError:
            raise BenchError(f"no snapshot counted the {what} within {SAMPLE_LIMIT:.0f}s; "
                             f"latest {watch.latest and watch.latest['today']}") from None
    finally:
        arrived.cancel()
    # A snapshot can only count what was accepted, so it cannot precede the 202 by more
    # than the response's trip back; clamp that sliver rather than report a negative time.
    return max(0, seen - accepted)


async def event_samples(session: aiohttp.ClientSession, base: str, watch: DashboardWatch,
                        *, product: str, count: int, before: int, rng: random.Random
                        ) -> list[int]:
    """``count`` client events, one at a time; latencies in ns."""
    latencies = []
    for k in range(count):
        await asyncio.sleep(rng.random())
        body = {"events": [{"type": "product.viewed", "sessionId": "bench-push",
                            "properties": {"productId": product}}]}

        async def post(body: dict[str, Any] = body) -> None:
            async with session.post(base + "/v1/analytics/events", json=body) as response:
                if response.status != 202:
                    raise BenchError(f"posting an event: {response.status} "
                                     f"{await response.text()}")

        target = before + k + 1
        latencies.append(await _timed(watch, at_least(views, target), post,
                                      f"event number {target}"))
    return latencies


async def order_samples(session: aiohttp.ClientSession, base: str, watch: DashboardWatch,
                        *, buyer_token: str, product: str, count: int, rng: random.Random
                        ) -> list[int]:
    """``count`` orders, one at a time; latencies in ns (the saga's time included)."""
    latencies = []
    before = orders(watch.latest) if watch.latest is not None else 0
    for k in range(count):
        await asyncio.sleep(rng.random())
        headers = {"Authorization": f"Bearer {buyer_token}", "Idempotency-Key": uuid.uuid4().hex}
        body = {"items": [{"productId": product, "quantity": 1}], "paymentMethod": "tok_visa"}

        async def post(body: dict[str, Any] = body, headers: dict[str, str] = headers) -> None:
            async with session.post(base + "/v1/orders", json=body, headers=headers) as response:
                if response.status != 202:
                    raise BenchError(f"placing an order: {response.status} "
                                     f"{await response.text()}")

        target = before + k + 1
        latencies.append(await _timed(watch, at_least(orders, target), post,
                                      f"order number {target}"))
    return latencies
