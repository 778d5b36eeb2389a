"""A command the broker does not take in time is answered 503 within the command wait (#14).

With the broker down, aiokafka's ``send_and_wait`` waits out its own metadata and
delivery timeouts, retried: a 30 s broker restart left ``POST /v1/orders`` unanswered
past 15 s (``tests/chaos/test_infra_restarts.py``). The stand-in below is a producer
whose send never completes, which is what the gateway saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from gateway.runtime.commands import CommandBus, new_deadline
from streams.errors import Unavailable
from streams.events.money import OrderLine
from streams.events.saga import OrderRequested


class StalledProducer:
    """A producer whose broker never acknowledges anything."""

    async def send_and_wait(self, *_: Any, **__: Any) -> None:
        await asyncio.Event().wait()


async def test_a_send_the_broker_never_takes_is_unavailable_within_the_command_wait(
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(Settings(env="dev", data_dir=tmp_path), command_timeout=0.5)
    bus = CommandBus(settings, StalledProducer(), "gw-1")
    order = OrderRequested(
        order_id="o-1", buyer_id="u-1", total=Decimal("3.00"), currency="USD",
        items=[OrderLine(product_id="p-1", seller_id="s-1", quantity=1,
                         unit_price=Decimal("3.00"), currency="USD")],
        payment_method="tok_visa", idempotency_key="k-1", reply_to="gw-1",
        deadline=new_deadline(settings),
    )
    started = time.monotonic()
    with pytest.raises(Unavailable) as refused:
        await bus.ask(order, correlation_id=None)
    assert time.monotonic() - started < 2.0
    assert refused.value.code == "SERVICE_UNAVAILABLE"
    assert refused.value.retry_after > 0
