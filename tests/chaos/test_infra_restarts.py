"""The broker, then the MongoDB server, then Redis restarted while orders arrive over REST.

Issue #14. One real worker and one real gateway process run on an embedded stack of this
module's own (the session's stack is shared, and restarting it would pull the ground from
under every other module). Orders are placed at a steady rate the whole time. For each
restart: ``/health/ready`` turns 503 while the dependency is down and 200 once it is back;
orders are accepted again afterwards; every answer was a 202 or a 503 problem+json with
``Retry-After``, none a 500 and none later than the client's deadline; and every order that
was accepted (202) reaches a terminal state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from config import Settings
from mercato._procs import free_port
from mercato.embedded import EmbeddedStack, Endpoints, Service
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support import shop
from tests.support.files import eventually
from tests.support.gateways import running_gateway
from tests.support.load import OrderLoad, Outcome, ReadyWatch
from tests.support.processes import running_worker

pytestmark = pytest.mark.chaos
RATE = 4.0  # orders per second, started whether or not earlier ones have answered
# No request may take longer: the command wait (5 s here) or a store's own timeout (5 s:
# MongoDB server selection, Redis connect, the broker's delivery timeout), plus slack for
# a busy two-core box.
REQUEST_DEADLINE = 15.0
READY_DEADLINE = 5.0  # readiness bounds each check at 2 s
# Seconds a dependency stays down once readiness has noticed. Each outage is long enough
# to have found a defect: the broker's left order requests unanswered past 15 s (the
# gateway's send was not bounded); MongoDB's outlasts what an agent's five attempts used
# to span (~30 s of 5 s server selections), when records were dead-lettered and their
# accepted orders never ended.
DOWN_FOR: dict[Service, float] = {"kafka": 20.0, "mongo": 32.0, "redis": 5.0}
HALT_GRACE = 5.0  # then SIGKILL: secantus' graceful stop can hang
PATIENCE = 60.0
REFUSAL_CODES = frozenset({"SERVICE_UNAVAILABLE", "WORKER_UNAVAILABLE"})
OwnStack = tuple[EmbeddedStack, Endpoints, Path]


@dataclass
class World:
    """This module's stack, its settings, and the accounts and product the load uses."""

    stack: EmbeddedStack
    settings: Settings
    http: aiohttp.ClientSession
    buyers: list[shop.Account]
    product_id: str


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    """An embedded stack only this module uses, started from the main thread (PDEATHSIG)."""
    root = tmp_path_factory.mktemp("infra")
    stack = EmbeddedStack(root / "stack", startup_timeout=60.0)
    with stack as endpoints:
        yield stack, endpoints, root


@pytest.fixture(scope="module")
async def world(own_stack: OwnStack) -> AsyncIterator[World]:
    """A real worker and a real gateway, one seller's product and three signed-in buyers."""
    stack, endpoints, root = own_stack
    settings = make_settings(endpoints, root / "mercato")
    await ensure_topics(settings)
    port = free_port()
    async with (
        running_worker(settings, root / "worker.log"),
        running_gateway(settings, port, root / "gateway.log") as base,
        aiohttp.ClientSession(base) as http,
    ):
        seller = await shop.register(http, "seller", "Seller")
        product_id = await shop.product(seller, "Widget", "3.00", "USD", stock=100_000)
        buyers = [await shop.register(http, "buyer", f"Buyer {n}") for n in range(3)]
        for buyer in buyers:
            await buyer.login()
        yield World(stack, settings, http, buyers, product_id)


async def until(condition: Callable[[], bool], what: str, within: float = PATIENCE) -> None:
    """Wait for a condition on what the load and the watch have recorded."""
    async def probe() -> bool:
        return condition()

    await eventually(probe, what, within)


def refused_properly(outcome: Outcome) -> bool:
    """A 503 problem+json with a stable code and a positive ``Retry-After``."""
    return (
        outcome.status == 503
        and outcome.content_type == "application/problem+json"
        and outcome.code in REFUSAL_CODES
        and (outcome.retry_after or "").isdigit()
        and int(outcome.retry_after or "0") > 0
    )


async def terminal(outcome: Outcome) -> str:
    """The order's status once it has reached a terminal state."""
    async def ended() -> str | None:
        shown = await outcome.buyer.call("GET", f"/v1/orders/{outcome.order_id}")
        status: str = shown["status"]
        return status if status in shop.ENDS else None

    return await eventually(ended, f"order {outcome.order_id} to end", PATIENCE)


@pytest.mark.timeout(110)
@pytest.mark.parametrize("service", ["kafka", "mongo", "redis"])
async def test_orders_survive_a_restart_of(world: World, service: Service) -> None:
    load = OrderLoad(world.buyers, world.product_id, rate=RATE, timeout=REQUEST_DEADLINE)
    watch = ReadyWatch(world.http, interval=0.25, timeout=READY_DEADLINE)
    async with watch.running(), load.running():
        started = time.monotonic()
        await until(lambda: len(load.accepted(started)) >= 3, "orders accepted before")

        down = time.monotonic()
        await asyncio.to_thread(world.stack.halt, service, HALT_GRACE)
        await until(lambda: (p := watch.last(down)) is not None and p.status == 503,
                    f"/health/ready to report {service} down")
        noticed = time.monotonic()
        await until(lambda: time.monotonic() - noticed >= DOWN_FOR[service],
                    "the outage to last")

        up = time.monotonic()
        await asyncio.to_thread(world.stack.resume, service)
        await until(lambda: (p := watch.last(up)) is not None and p.status == 200,
                    f"/health/ready to report ready after {service} came back")
        back = time.monotonic()
        await until(lambda: len(load.accepted(back)) >= 3, "orders accepted again")

    hung = [o for o in load.outcomes if o.status is None]
    assert not hung, f"{len(hung)} requests got no answer in {REQUEST_DEADLINE}s"
    wrong = [o for o in load.outcomes if o.status != 202 and not refused_properly(o)]
    assert not wrong, wrong[:5]
    refused = [o for o in load.outcomes if o.status == 503 and o.sent >= down]
    assert refused, f"no order was refused while {service} was down"
    slow_probes = [p for p in watch.probes if p.status is None]
    assert not slow_probes, f"/health/ready took over {READY_DEADLINE}s {len(slow_probes)}x"

    accepted = load.accepted()
    ends = await asyncio.gather(*(terminal(o) for o in accepted))
    assert len(ends) == len(accepted)
    assert "completed" in ends
    assert "payment_failed" in ends
