"""A gateway restarted while WebSocket and SSE clients follow channels that orders move.

Issue #14. Two real gateway processes share one real worker: orders are placed through
the first at a steady rate, and the clients follow ``product:{id}`` (every order moves its
stock) and their buyer's ``user:{id}`` through the second, which is stopped (SIGTERM:
streams close with 1001) and started again on the same port while orders keep coming. The
clients reconnect and resume from the last id they received. At the end each client has
received, per channel, exactly the push topic's records of that channel, in order: none
missing (what was published while the gateway was down was replayed) and none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from config import Settings
from mercato._procs import free_port
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.topics import partitions
from tests.conftest import make_settings
from tests.support import shop
from tests.support.files import eventually
from tests.support.followers import Follower, SseFollower, WsFollower, published
from tests.support.gateways import running_gateway
from tests.support.load import OrderLoad
from tests.support.processes import running_worker

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(110)]
RATE = 3.0
REQUEST_DEADLINE = 15.0
PATIENCE = 60.0


@dataclass
class World:
    """Settings, the REST gateway's session, the buyers and the product."""

    settings: Settings
    http: aiohttp.ClientSession
    buyers: list[shop.Account]
    product_id: str
    root: Path


@pytest.fixture(scope="module")
async def world(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    """A real worker and the REST gateway; a seller's product and two signed-in buyers."""
    root = tmp_path_factory.mktemp("gateway-restart")
    settings = make_settings(stack, root / "mercato")
    await ensure_topics(settings)
    async with (
        running_worker(settings, root / "worker.log"),
        running_gateway(settings, free_port(), root / "rest-gateway.log") as base,
        aiohttp.ClientSession(base) as http,
    ):
        seller = await shop.register(http, "seller", "Seller")
        product_id = await shop.product(seller, "Lamp", "4.00", "USD", stock=100_000)
        buyers = [await shop.register(http, "buyer", f"Buyer {n}") for n in range(2)]
        for buyer in buyers:
            await buyer.login()
        yield World(settings, http, buyers, product_id, root)


async def until(condition: Callable[[], bool], what: str, within: float = PATIENCE) -> None:
    """Wait for a condition on what the load and the clients have recorded."""
    async def probe() -> bool:
        return condition()

    await eventually(probe, what, within)


async def everything_received(settings: Settings, followers: list[Follower]) -> None:
    """Wait until each follower holds exactly the topic's records of its channels."""
    deadline = time.monotonic() + PATIENCE
    while True:
        expected = await published(settings, followers[0].channels)
        if all(f.received == expected for f in followers):
            return
        if time.monotonic() > deadline:
            for follower in followers:
                for channel, ids in expected.items():
                    got = follower.received[channel]
                    assert got == ids, (
                        f"{type(follower).__name__} on {channel}: "
                        f"missing {sorted(set(ids) - set(got))}, "
                        f"duplicated {sorted({i for i in got if got.count(i) > 1})}, "
                        f"unexpected {sorted(set(got) - set(ids))}"
                    )
        await asyncio.sleep(0.5)


async def test_streams_resume_across_a_gateway_restart_with_no_gap_and_no_duplicate(
    world: World,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    buyer = world.buyers[0]
    channels = [f"product:{world.product_id}", f"user:{buyer.user_id}"]
    ws = WsFollower(base, buyer.token, channels)
    sse = SseFollower(base, buyer.token, channels, partitions=partitions(world.settings, "push"))
    followers: list[Follower] = [ws, sse]
    load = OrderLoad(world.buyers, world.product_id, rate=RATE, timeout=REQUEST_DEADLINE)
    async with ws.following(), sse.following(), contextlib.AsyncExitStack() as loading:
        await loading.enter_async_context(load.running())
        async with running_gateway(world.settings, port, world.root / "push-gateway-1.log"):
            started = time.monotonic()
            await until(lambda: len(load.accepted(started)) >= 5
                        and all(len(f.received[channels[0]]) >= 5 for f in followers),
                        "orders and their events before the restart")
        # Stopped (its streams closed with 1001); orders go on through the other gateway
        # and their events are published while nobody follows them here.
        stopped = time.monotonic()
        await until(lambda: len(load.accepted(stopped)) >= 5, "orders while it is down")
        async with running_gateway(world.settings, port, world.root / "push-gateway-2.log"):
            back = time.monotonic()
            await until(lambda: all(f.streams >= 2 for f in followers), "the clients to return")
            await until(lambda: len(load.accepted(back)) >= 5, "orders after the restart")
            await loading.aclose()  # the load stops; the clients go on following
            for outcome in load.accepted():
                await shop.settled(outcome.buyer, str(outcome.order_id))
            await everything_received(world.settings, followers)

    # The REST gateway was never restarted; a busy worker may still answer 503.
    assert {o.status for o in load.outcomes} <= {202, 503}
