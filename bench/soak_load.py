"""The soak's steady mixed load: REST reads, orders, uploads and client analytics events.

Open loop: requests start on a fixed schedule at the offered rate whatever the answers
take (in flight is bounded, so a stalled stack shows as latency, not as a growing heap in
the benchmark itself). Each kind's answers are kept apart for the warm-up and the
measured window; a 5xx counts in either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.orders import World
from bench.soak_stats import KindStats, mix

MAX_IN_FLIGHT = 256
UPLOAD_BYTES = 4 * 1024
EVENTS_PER_CALL = 10
DECLINE_EVERY = 4  # one order in four is paid with a card the simulator declines
# Per unit of weight, at the default --rate 20 each unit is one request a second.
WEIGHTS = {"products": 4, "product": 4, "me": 4, "order": 4, "upload": 2, "events": 2}
EXPECTED = {"products": 200, "product": 200, "me": 200, "order": 202, "upload": 201,
            "events": 202}


@dataclasses.dataclass(slots=True)
class Windows:
    """Per-kind stats of the warm-up and of the measured window."""

    warmup: dict[str, KindStats] = dataclasses.field(default_factory=dict)
    measured: dict[str, KindStats] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for into in (self.warmup, self.measured):
            into.update({kind: KindStats(kind, EXPECTED[kind]) for kind in WEIGHTS})

    def server_errors(self) -> int:
        """5xx answers over the whole run."""
        return sum(s.server_errors for w in (self.warmup, self.measured) for s in w.values())


class MixedLoad:
    """Offers the mix of ``WEIGHTS`` through one session; remembers the accepted orders."""

    def __init__(self, session: aiohttp.ClientSession, base: str, world: World) -> None:
        self._session = session
        self._base = base
        self._world = world
        self._tokens = list(world.tokens.values())
        self._sent: Counter[str] = Counter()
        self._calls: dict[str, Callable[[int], Awaitable[int]]] = {
            "products": self._products, "product": self._product, "me": self._me,
            "order": self._order, "upload": self._upload, "events": self._events}
        self.windows = Windows()
        self.orders: dict[str, bool] = {}  # accepted order id -> declined on purpose
        self._blob = os.urandom(UPLOAD_BYTES)

    async def offer(self, rate: float, seconds: float, warmup: float,
                    measuring: Callable[[], None]) -> None:
        """Run the mix at ``rate`` requests/s for ``seconds``; the first ``warmup`` apart.

        ``measuring`` is called as the first request after the warm-up is sent.
        """
        cycle = mix(WEIGHTS)
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        running: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        total = int(rate * seconds)
        first_measured = math.ceil(warmup * rate)
        try:
            for i in range(total):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                into = self.windows.warmup if i < first_measured else self.windows.measured
                if i == first_measured:
                    measuring()
                task = asyncio.create_task(self._one(cycle[i % len(cycle)], into, slots))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _one(self, kind: str, into: dict[str, KindStats], slots: asyncio.Semaphore) -> None:
        async with slots:
            # Counted per kind, so that one order in DECLINE_EVERY is declined whatever the mix.
            self._sent[kind] += 1
            seq = self._sent[kind]
            sent = time.perf_counter_ns()
            try:
                status = await self._calls[kind](seq)
            except (aiohttp.ClientError, TimeoutError):
                status = None
            into[kind].record(status, time.perf_counter_ns() - sent)

    def _auth(self, seq: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[seq % len(self._tokens)]}"}

    async def _status(self, method: str, path: str, *,
                      take: Callable[[aiohttp.ClientResponse], Awaitable[None]] | None = None,
                      **kwargs: Any) -> int:
        async with self._session.request(method, self._base + path, **kwargs) as response:
            if take is not None and response.status < 300:
                await take(response)
            else:
                await response.read()
            return response.status

    async def _products(self, seq: int) -> int:
        return await self._status("GET", "/v1/products", params={"limit": "20"})

    async def _product(self, seq: int) -> int:
        products = self._world.products
        return await self._status("GET", f"/v1/products/{products[seq % len(products)]}")

    async def _me(self, seq: int) -> int:
        return await self._status("GET", "/v1/users/me", headers=self._auth(seq))

    async def _order(self, seq: int) -> int:
        declined = seq % DECLINE_EVERY == 0
        products = self._world.products
        body = {"items": [{"productId": products[seq % len(products)], "quantity": 1}],
                "paymentMethod": "tok_declined" if declined else "tok_visa"}

        async def take(response: aiohttp.ClientResponse) -> None:
            self.orders[(await response.json())["orderId"]] = declined

        headers = {**self._auth(seq), "Idempotency-Key": uuid.uuid4().hex}
        return await self._status("POST", "/v1/orders", json=body, headers=headers, take=take)

    async def _upload(self, seq: int) -> int:
        form = aiohttp.FormData()
        form.add_field("file", self._blob, filename=f"soak-{seq}.bin")
        return await self._status("POST", "/v1/files", data=form, headers=self._auth(seq))

    async def _events(self, seq: int) -> int:
        products = self._world.products
        events = [{"type": "product.viewed", "sessionId": f"soak-session-{seq % 200}",
                   "properties": {"productId": products[(seq + i) % len(products)]}}
                  for i in range(EVENTS_PER_CALL)]
        return await self._status("POST", "/v1/analytics/events", json={"events": events})
