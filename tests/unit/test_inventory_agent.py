"""The inventory agent: reservations, releases and adjustments, idempotent and never negative."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.app import create_worker_app
from agents.inventory.decider import KEEP_APPLIED, KEEP_RECENT, InventoryDecider, reservation_key
from config import Settings
from streams.envelope import Envelope, derived_id, new_event
from streams.events.commands import CommandAnswered
from streams.events.inventory import (
    AdjustRequested,
    ForgetRequested,
    ReleaseRequested,
    ReserveRequested,
    StockChanged,
)
from streams.events.saga import StockRejected, StockReleased, StockReserved
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop, identity

NOW = datetime(2024, 5, 17, 12, 0, 0, 250000, tzinfo=UTC)
P = "p-lamp"
RETENTION = 3600.0


def raw(payload: BaseModel, *, key: str = P, event_id: str | None = None,
        at: datetime | None = None) -> bytes:
    return new_event(payload, key=key, source="tests", event_id=event_id,
                     occurred_at=at).encode()


def adjust(change: int, *, reply_to: str = "gw-1", deadline: datetime | None = None) -> bytes:
    return raw(
        AdjustRequested(
            product_id=P, quantity_change=change, requested_by="u-seller", reply_to=reply_to,
            deadline=deadline,
        )
    )


def reserve(
    order: str, quantity: int, *, product: str = P, at: datetime | None = None
) -> bytes:
    return raw(
        ReserveRequested(
            reservation_id=f"{order}:{product}", order_id=order, product_id=product,
            quantity=quantity,
        ),
        key=product, at=at,
    )


def release(order: str, *, product: str = P, at: datetime | None = None) -> bytes:
    return raw(
        ReleaseRequested(
            reservation_id=f"{order}:{product}", order_id=order, product_id=product,
            reason="payment failed",
        ),
        key=product, at=at,
    )


def forget(order: str, *, product: str = P) -> bytes:
    return raw(
        ForgetRequested(reservation_id=f"{order}:{product}", order_id=order, product_id=product),
        key=product,
    )


@pytest.fixture
def effects() -> RecordingEffects:
    return RecordingEffects()


@pytest.fixture
def table() -> dict[str, Any]:
    return {}


@pytest.fixture
def decider(table: dict[str, Any], effects: RecordingEffects) -> InventoryDecider:
    return InventoryDecider(table, effects, retention=RETENTION)


async def stocked(decider: InventoryDecider, effects: RecordingEffects, units: int) -> None:
    assert await decider.handle(adjust(units, reply_to=""), now=NOW) == "accepted"
    effects.clear()


# --- adjustments ---------------------------------------------------------------------------


async def test_first_adjustment_creates_the_stock_and_answers(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    command = adjust(10, deadline=NOW + timedelta(seconds=4))
    assert await decider.handle(command, now=NOW) == "accepted"

    assert table[P]["stock"] == 10
    assert table[P]["created"] is True
    [changed] = effects.on("inventory")
    assert changed.key == P
    assert changed.id == derived_id(Envelope.decode(command).id, "stock.changed")
    event = changed.payload(StockChanged)
    assert (event.current_stock, event.change, event.reason) == (10, 10, "created")
    assert effects.pushed == [(f"product:{P}", changed)]
    [answer] = [e.payload(CommandAnswered) for e in effects.on("replies")]
    assert (answer.outcome, answer.reply_to) == ("accepted", "gw-1")
    assert answer.result == {"productId": P, "currentStock": 10}


async def test_later_adjustments_say_adjusted_and_silent_ones_do_not_reply(
    decider: InventoryDecider, effects: RecordingEffects
) -> None:
    await stocked(decider, effects, 10)
    assert await decider.handle(adjust(-4, reply_to=""), now=NOW) == "accepted"
    [event] = [e.payload(StockChanged) for e in effects.on("inventory")]
    assert (event.current_stock, event.change, event.reason) == (6, -4, "adjusted")
    assert effects.on("replies") == []


async def test_redelivered_adjustment_applies_once_and_repeats_its_effects(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    command = adjust(5)
    assert await decider.handle(command, now=NOW) == "accepted"
    first = list(effects.emitted)
    assert await decider.handle(command, now=NOW + timedelta(seconds=1)) == "accepted"
    assert table[P]["stock"] == 5
    assert identity(effects.emitted) == identity(first) * 2
    # A new command with the same change is a new adjustment.
    assert await decider.handle(adjust(5), now=NOW) == "accepted"
    assert table[P]["stock"] == 10


async def test_adjustment_below_zero_is_rejected_and_changes_nothing(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 3)
    assert await decider.handle(adjust(-4), now=NOW) == "rejected"
    assert table[P]["stock"] == 3
    assert effects.on("inventory") == []
    assert effects.pushed == []
    [answer] = [e.payload(CommandAnswered) for e in effects.on("replies")]
    assert (answer.outcome, answer.code) == ("rejected", "INSUFFICIENT_STOCK")
    assert "below zero" in (answer.detail or "")


async def test_late_adjustment_expires_but_undated_ones_never_do(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    late = adjust(7, deadline=NOW - timedelta(seconds=1))
    assert await decider.handle(late, now=NOW) == "expired"
    assert P not in table
    assert [e.type for e in effects.on("audit")] == ["command.expired"]
    assert await decider.handle(adjust(7, reply_to=""), now=NOW + timedelta(days=1)) == "accepted"
    assert table[P]["stock"] == 7


async def test_applied_ids_are_bounded(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    for _ in range(KEEP_APPLIED + 6):
        await decider.handle(adjust(1, reply_to=""), now=NOW)
    assert table[P]["stock"] == KEEP_APPLIED + 6
    assert len(table[P]["applied"]) == KEEP_APPLIED


# --- reservations --------------------------------------------------------------------------


async def test_reserve_takes_stock_and_tells_the_saga_and_the_public(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 10)
    assert await decider.handle(reserve("o-1", 3), now=NOW) == "reserved"

    assert table[P]["stock"] == 7
    assert table[P]["recent"]["o-1:p-lamp"]["status"] == "reserved"
    [saga] = effects.on("order-saga")
    assert saga.key == "o-1"  # keyed by ORDER id
    assert saga.id == derived_id("reservation", "o-1:p-lamp", "reserved")
    reserved = saga.payload(StockReserved)
    assert (reserved.order_id, reserved.product_id, reserved.quantity) == ("o-1", P, 3)
    [public] = effects.on("inventory")
    assert public.key == P
    change = public.payload(StockChanged)
    assert (change.current_stock, change.change, change.reason, change.order_id) == (
        7, -3, "reserved", "o-1"
    )
    assert effects.pushed == [(f"product:{P}", public)]


async def test_redelivered_reserve_changes_nothing_twice(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 10)
    command = reserve("o-1", 3)
    await decider.handle(command, now=NOW)
    first, state = list(effects.emitted), dict(table[P])
    # Even a fresh envelope for the same reservation (the saga retrying) is recognised.
    for again in (command, reserve("o-1", 3)):
        assert await decider.handle(again, now=NOW + timedelta(seconds=3)) == "reserved"
    assert table[P]["stock"] == 7
    assert table[P]["recent"] == state["recent"]
    assert [(t, e.id, e.data, e.occurred_at) for t, e in effects.emitted] == [
        (t, e.id, e.data, e.occurred_at) for t, e in first
    ] * 3


async def test_insufficient_stock_is_rejected_with_what_is_available(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 2)
    command = reserve("o-2", 3)
    assert await decider.handle(command, now=NOW) == "rejected"
    assert table[P]["stock"] == 2
    [saga] = effects.on("order-saga")
    rejected = saga.payload(StockRejected)
    assert (rejected.reason, rejected.available) == ("out_of_stock", 2)
    assert effects.on("inventory") == []
    # A redelivery after a restock repeats the recorded answer instead of reserving late.
    await decider.handle(adjust(10, reply_to=""), now=NOW)
    assert await decider.handle(command, now=NOW) == "rejected"
    assert table[P]["stock"] == 12
    assert effects.on("order-saga")[-1].id == saga.id


async def test_unknown_product_is_rejected(
    decider: InventoryDecider, effects: RecordingEffects
) -> None:
    assert await decider.handle(reserve("o-3", 1, product="p-ghost"), now=NOW) == "rejected"
    [saga] = effects.on("order-saga")
    assert saga.payload(StockRejected).reason == "unknown_product"


async def test_stock_never_goes_negative(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 10)
    outcomes = [await decider.handle(reserve(f"o-{i}", 1 + i % 3), now=NOW) for i in range(20)]
    reserved = sum(
        e.payload(StockReserved).quantity for e in effects.of("saga.stock_reserved")
    )
    assert reserved == 10 - table[P]["stock"]
    assert table[P]["stock"] >= 0
    assert outcomes.count("reserved") == len(effects.of("saga.stock_reserved"))
    assert all(e.payload(StockChanged).current_stock >= 0 for e in effects.on("inventory"))


# --- releases ------------------------------------------------------------------------------


async def test_release_gives_the_stock_back_once(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 10)
    await decider.handle(reserve("o-1", 4), now=NOW)
    effects.clear()
    command = release("o-1")
    assert await decider.handle(command, now=NOW) == "released"
    assert table[P]["stock"] == 10
    [saga] = effects.on("order-saga")
    assert saga.key == "o-1"
    assert saga.payload(StockReleased).quantity == 4
    [change] = [e.payload(StockChanged) for e in effects.on("inventory")]
    assert (change.current_stock, change.change, change.reason) == (10, 4, "released")
    first = list(effects.emitted)

    assert await decider.handle(command, now=NOW + timedelta(seconds=5)) == "released"
    assert await decider.handle(release("o-1"), now=NOW) == "released"  # a fresh envelope
    assert table[P]["stock"] == 10
    assert identity(effects.emitted) == identity(first) * 3
    # The reserve redelivered after its release reserves nothing again.
    assert await decider.handle(reserve("o-1", 4), now=NOW) == "reserved"
    assert table[P]["stock"] == 10


async def test_releasing_an_unknown_reservation_answers_zero_and_blocks_a_late_reserve(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 5)
    assert await decider.handle(release("o-9"), now=NOW) == "noop"
    [saga] = effects.on("order-saga")
    assert saga.payload(StockReleased).quantity == 0
    assert effects.on("inventory") == []
    assert effects.pushed == []
    assert await decider.handle(reserve("o-9", 2), now=NOW) == "stale"
    assert table[P]["stock"] == 5


async def test_releasing_a_rejected_reservation_answers_zero(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 1)
    await decider.handle(reserve("o-5", 2), now=NOW)
    assert await decider.handle(release("o-5"), now=NOW) == "noop"
    assert effects.on("order-saga")[-1].payload(StockReleased).quantity == 0
    assert table[P]["stock"] == 1


async def test_other_types_are_ignored_and_bad_quantities_refused(
    decider: InventoryDecider, effects: RecordingEffects
) -> None:
    stray = raw(StockChanged(product_id=P, current_stock=1, change=1, reason="adjusted"))
    assert await decider.handle(stray, now=NOW) == "ignored"
    with pytest.raises(ValueError, match="quantity"):
        await decider.handle(reserve("o-0", 0), now=NOW)
    assert effects.emitted == []


# --- Faust's own harness -------------------------------------------------------------------


async def test_faust_agent_wiring(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    effects = RecordingEffects()
    worker = create_worker_app(settings, store="memory://", effects=effects)
    first = reserve("o-1", 2)
    try:
        async with worker.agents["inventory"].test_context() as agent:
            await agent.put(key=P.encode(), value=adjust(3, reply_to=""))
            await agent.put(key=P.encode(), value=first)
            await agent.put(key=P.encode(), value=first)  # redelivery
            await agent.put(key=P.encode(), value=reserve("o-2", 2))
            await agent.put(key=P.encode(), value=b"not json")
            # put() returns once a record is taken, not done (agents.runtime.lanes); stopping the
            # agent would cancel the last one. Polled: the recording effects have no wake-up.
            async with asyncio.timeout(5):
                while not effects.on("dlq"):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
    finally:
        close_unstarted_consumer_loop(worker.app)

    results = [(e.type, e.key) for e in effects.on("order-saga")]
    assert results == [
        ("saga.stock_reserved", "o-1"),
        ("saga.stock_reserved", "o-1"),
        ("saga.stock_rejected", "o-2"),
    ]
    levels = [e.payload(StockChanged).current_stock for e in effects.on("inventory")]
    assert levels == [3, 1, 1]
    [letter] = effects.on("dlq")
    assert letter.data["agent"] == "inventory"


async def test_a_product_entry_stays_small_however_many_orders_it_sells(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    # Completed orders' reservations stay "reserved" (a refund may release them): they used
    # to stay in the product's entry, which every sale then rewrote whole.
    sales = KEEP_RECENT * 3
    await stocked(decider, effects, sales)
    for n in range(sales):
        assert await decider.handle(reserve(f"o-{n}", 1), now=NOW) == "reserved"

    assert table[P]["stock"] == 0
    assert len(table[P]["recent"]) == KEEP_RECENT
    oldest = table[reservation_key("o-0:p-lamp")]
    assert (oldest["status"], oldest["quantity"]) == ("reserved", 1)
    # The oldest is still recognised when redelivered, and still releasable (a refund).
    effects.emitted.clear()
    assert await decider.handle(reserve("o-0", 1), now=NOW) == "reserved"
    assert table[P]["stock"] == 0
    assert await decider.handle(release("o-0"), now=NOW) == "released"
    assert table[P]["stock"] == 1
    assert await decider.handle(release("o-0"), now=NOW) == "released"  # redelivered
    assert table[P]["stock"] == 1


async def test_an_entry_stored_with_every_reservation_inside_reads_on_and_moves_out(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    record = {"orderId": "o-old", "quantity": 2, "at": NOW.isoformat(), "status": "reserved",
              "stock": 3}
    table[P] = {"stock": 3, "created": True, "applied": {},
                "reservations": {"o-old:p-lamp": record}}

    assert await decider.handle(reserve("o-old", 2), now=NOW) == "reserved"  # recognised
    assert table[P]["stock"] == 3
    assert await decider.handle(reserve("o-new", 1), now=NOW) == "reserved"

    assert "reservations" not in table[P]
    assert table[reservation_key("o-old:p-lamp")] == record
    assert await decider.handle(release("o-old"), now=NOW) == "released"
    assert table[P]["stock"] == 4


async def test_stock_changes_are_numbered_as_decided_and_a_repeat_keeps_its_number(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 10)
    await decider.handle(reserve("o-1", 1), now=NOW)
    await decider.handle(reserve("o-2", 1), now=NOW)
    await decider.handle(release("o-1"), now=NOW)
    # The saga sends o-2's reserve again (it repeats its last plan): same change, same number.
    await decider.handle(reserve("o-2", 1), now=NOW)

    changes = [e.payload(StockChanged) for e in effects.on("inventory")
               if e.type == "inventory.stock_changed"]
    # (The initial stock of 10 was change 1.)
    assert [(c.current_stock, c.sequence) for c in changes] == [(9, 2), (8, 3), (9, 4), (8, 3)]


# --- forgetting an expired order's reservations ---------------------------------------------


async def test_forgetting_deletes_the_record_wherever_it_is_and_keeps_the_stock(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, KEEP_RECENT + 2)
    for n in range(KEEP_RECENT + 1):
        await decider.handle(reserve(f"o-{n}", 1), now=NOW)
    assert reservation_key("o-0:p-lamp") in table  # moved out of the entry
    effects.clear()

    assert await decider.handle(forget("o-0"), now=NOW) == "forgotten"
    assert await decider.handle(forget("o-5"), now=NOW) == "forgotten"  # still in "recent"
    assert reservation_key("o-0:p-lamp") not in table
    assert "o-5:p-lamp" not in table[P]["recent"]
    assert table[P]["stock"] == 1  # sold units stay sold
    before = copy.deepcopy(table)
    assert await decider.handle(forget("o-0"), now=NOW) == "forgotten"  # redelivered
    assert await decider.handle(forget("o-missing"), now=NOW) == "forgotten"
    assert table == before
    assert effects.emitted == []


async def test_a_command_older_than_the_retention_with_no_record_is_ignored(
    decider: InventoryDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await stocked(decider, effects, 5)
    sent = NOW - timedelta(seconds=RETENTION)
    assert await decider.handle(reserve("o-1", 2, at=sent), now=NOW) == "late"
    assert await decider.handle(release("o-1", at=sent), now=NOW) == "late"
    assert table[P]["stock"] == 5
    assert table[P]["recent"] == {}
    assert effects.emitted == []
    # One the inventory still holds is carried out whatever its age (a refund's release).
    await decider.handle(reserve("o-2", 2), now=NOW)
    assert await decider.handle(release("o-2", at=sent), now=NOW) == "released"
    assert table[P]["stock"] == 5
