"""An ended order's saga entry and reservation records are deleted once the retention passed.

A real worker with a retention of seconds: an order that completed is forgotten (a
tombstone on the saga table's changelog, its reservation gone from the product's entry on
the inventory table's changelog) while an order still awaiting its charge is untouched.
The read model keeps the ended order, and cancelling it is refused as for any ended order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.analytics import listed
from tests.support.files import eventually
from tests.support.http import gateway_client
from tests.support.orders import account, place, read_topics, settled
from tests.support.processes import running_worker, tail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
# Long enough that no command of a live order is older than it when the inventory takes
# it, on a loaded machine too: older ones without a record are ignored as late.
RETENTION = 20


async def _changelog(env: Settings, table: str, key: str) -> list[dict[str, Any] | None]:
    """Every value of ``key`` on ``table``'s changelog, oldest first (None: a tombstone)."""
    records = await read_topics(env, [f"{env.app_id}-{table}-changelog"])
    return [orjson.loads(value) if value else None
            for _, k, value in records if k.decode().strip('"') == key]


@pytest.fixture
async def env(stack: Endpoints, tmp_path: Path) -> Settings:
    """A fresh stack's settings with a retention of seconds; the charge may hang for minutes."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path), saga_retention=RETENTION,
        # tok_timeout hangs ten call timeouts: the second order awaits its charge all along.
        payment_call_timeout=60.0, saga_charge_timeout=600.0,
    )
    await ensure_topics(settings)
    return settings


async def test_an_ended_order_is_forgotten_and_a_live_one_is_left_alone(env: Settings) -> None:
    log = env.data_dir / "worker.log"
    async with gateway_client(env) as client, running_worker(env, log):
        _, seller = await account(client, "seller", patience=90)
        _, buyer = await account(client)
        product = await listed(client, seller, price="2.00", currency="USD")
        ended = await place(client, buyer, [(product, 1)])
        await settled(client, buyer, ended, until={"completed"})
        live = await place(client, buyer, [(product, 2)], method="tok_timeout")
        await settled(client, buyer, live, until={"stock_reserved"})

        async def forgotten() -> bool:
            values = await _changelog(env, "order-sagas", ended)
            return bool(values) and values[-1] is None

        await eventually(forgotten, within=RETENTION + 70, what="the ended order's tombstone")
        (retired,) = [v for v in await _changelog(env, "order-sagas", ended)
                      if v is not None and "retired" in v]
        assert retired["status"] == "completed"

        async def reservation_dropped() -> dict[str, Any] | None:
            values = await _changelog(env, "inventory-stock", product)
            entry = values[-1] if values else None
            gone = entry is not None and f"{ended}:{product}" not in entry["recent"]
            return entry if gone else None

        entry = await eventually(reservation_dropped, within=30,
                                 what="the ended order's reservation to leave the stock table")
        assert entry["recent"][f"{live}:{product}"]["status"] == "reserved"
        assert entry["stock"] == 50 - 1 - 2  # forgetting gives back nothing

        # The live order: its last saga value is a whole state, never retired.
        last = (await _changelog(env, "order-sagas", live))[-1]
        assert last is not None
        assert "retired" not in last
        assert last["status"] == "stock_reserved"

        # The read model keeps the ended order; the saga refuses to cancel what it forgot.
        assert (await settled(client, buyer, ended, until={"completed"}))["status"] == "completed"
        response = await client.post(f"/v1/orders/{ended}/cancel", headers=buyer)
        assert response.status == 409, await response.text()
        assert (await response.json())["code"] == "ORDER_NOT_CANCELLABLE"
    assert f"order {ended} forgotten" in tail(log, lines=10_000)
