"""Steady REST load for the chaos tests: orders placed at a fixed rate, every answer kept.

Open loop: a request is started every ``1 / rate`` seconds whether or not the previous
ones have answered, so a stalled gateway shows up as slow or missing answers, not as a
load that politely slows down with it. Each request has a client-side deadline; one
that passes it is recorded as unanswered (a hang), never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import aiohttp

from tests.support.shop import Account

# What the built-in payment simulator does with each: both end the saga.
METHODS = ("tok_visa", "tok_visa", "tok_visa", "tok_declined")


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One POST /v1/orders and what came back."""

    sent: float  # time.monotonic() when sent
    elapsed: float
    status: int | None  # None: no answer before the client's deadline
    buyer: Account
    order_id: str | None = None
    code: str | None = None
    content_type: str = ""
    retry_after: str | None = None


class OrderLoad:
    """Places orders for ``buyers`` (round robin) at ``rate`` per second until stopped."""

    def __init__(
        self, buyers: Sequence[Account], product_id: str, *, rate: float, timeout: float,
    ) -> None:
        self._buyers = buyers
        self._product_id = product_id
        self._interval = 1.0 / rate
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.outcomes: list[Outcome] = []
        self._inflight: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OrderLoad]:
        """Run the load for the block; on exit, wait for the requests still in flight."""
        ticker = asyncio.create_task(self._tick(), name="order-load")
        try:
            yield self
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            # Each has its own deadline, so this ends; their outcomes count too.
            await asyncio.gather(*self._inflight)

    def accepted(self, since: float = 0.0) -> list[Outcome]:
        """The 202s of requests sent at or after ``since``."""
        return [o for o in self.outcomes if o.status == 202 and o.sent >= since]

    async def _tick(self) -> None:
        n = 0
        start = time.monotonic()
        while True:
            task = asyncio.create_task(self._place(self._buyers[n % len(self._buyers)], n))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            n += 1
            # Paced from the start, so a slow event loop does not lower the rate for good.
            await asyncio.sleep(max(0.0, start + n * self._interval - time.monotonic()))

    async def _place(self, buyer: Account, n: int) -> None:
        body = {"items": [{"productId": self._product_id, "quantity": 1}],
                "paymentMethod": METHODS[n % len(METHODS)]}
        headers = {"Authorization": f"Bearer {buyer.token}",
                   "Idempotency-Key": uuid.uuid4().hex}
        sent = time.monotonic()
        try:
            async with buyer.http.post("/v1/orders", json=body, headers=headers,
                                       timeout=self._timeout) as response:
                payload = await response.json(content_type=None)
                outcome = Outcome(
                    sent, time.monotonic() - sent, response.status, buyer,
                    order_id=payload.get("orderId") if response.status == 202 else None,
                    code=payload.get("code"), content_type=response.content_type,
                    retry_after=response.headers.get("Retry-After"),
                )
        except TimeoutError:
            outcome = Outcome(sent, time.monotonic() - sent, None, buyer)
        self.outcomes.append(outcome)


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One GET /health/ready."""

    sent: float
    elapsed: float
    status: int | None  # None: no answer before the deadline


class ReadyWatch:
    """Polls ``/health/ready`` every ``interval`` seconds and keeps every answer."""

    def __init__(self, http: aiohttp.ClientSession, *, interval: float, timeout: float) -> None:
        self._http = http
        self._interval = interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.probes: list[Probe] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReadyWatch]:
        """Watch for the duration of the block."""
        task = asyncio.create_task(self._watch(), name="ready-watch")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def last(self, since: float) -> Probe | None:
        """The latest answer to a probe sent at or after ``since``."""
        found = [p for p in self.probes if p.sent >= since]
        return found[-1] if found else None

    async def _watch(self) -> None:
        while True:
            sent = time.monotonic()
            try:
                async with self._http.get("/health/ready", timeout=self._timeout) as response:
                    await response.read()
                    status: int | None = response.status
            except TimeoutError:
                status = None
            self.probes.append(Probe(sent, time.monotonic() - sent, status))
            await asyncio.sleep(self._interval)
