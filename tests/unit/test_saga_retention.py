"""Ended orders are forgotten once the retention passed: retired, then deleted, idempotently."""

from __future__ import annotations

from datetime import datetime, timedelta

from agents.saga import retention
from agents.saga.retention import BATCH, RetentionWatch, expires_at, has_ended
from streams.envelope import Envelope
from streams.events.saga import StockReleased
from tests.unit.test_order_saga import (
    NOW,
    ORDER,
    RETENTION,
    World,
    cancel,
    charging_world,
    completed_world,
    refund_failed,
)

DUE = NOW + timedelta(seconds=RETENTION)


async def expire(world: World, at: datetime) -> str:
    """Let the retention timer look at ``at`` and apply the one signal it sends."""
    before = len(world.effects.on("order-saga"))
    assert await world.expiry.tick(at) == 1
    signal = world.effects.on("order-saga")[before]
    assert signal.data["step"] == "expire"
    return await world.saga.handle(signal.encode(), now=at)


def signals(world: World) -> list[Envelope]:
    return [e for e in world.effects.on("order-saga") if e.data.get("step") == "expire"]


async def test_an_ended_order_is_retired_then_deleted_and_its_reservations_forgotten() -> None:
    world = await completed_world()
    version = world.effects.orders.docs[ORDER]["version"]
    assert await world.expiry.tick(DUE - timedelta(seconds=1)) == 0

    assert await expire(world, DUE) == "retired"
    forgets = world.effects.of("inventory.forget_requested")
    assert [(e.key, e.data["reservationId"]) for e in forgets] == [
        ("p1", f"{ORDER}:p1"), ("p2", f"{ORDER}:p2")]
    # Not a change of the order: the read model keeps it as it ended.
    assert world.effects.orders.docs[ORDER]["version"] == version
    retire = signals(world)[-1]

    assert await expire(world, DUE) == "forgotten"
    assert ORDER not in world.table
    assert world.effects.orders.docs[ORDER]["status"] == "completed"
    # Every later look, and a redelivered signal, finds nothing to do.
    assert await world.expiry.tick(DUE + timedelta(hours=1)) == 0
    assert await world.saga.handle(retire.encode(), now=DUE) == "gone"
    assert len(world.effects.of("inventory.forget_requested")) == 2


async def test_a_redelivered_retire_sends_the_same_commands_again() -> None:
    world = await completed_world()
    assert await expire(world, DUE) == "retired"
    (retire,) = signals(world)
    first = [e.id for e in world.effects.of("inventory.forget_requested")]
    world.effects.clear()
    assert await world.saga.handle(retire.encode(), now=DUE) == "repeated"
    assert [e.id for e in world.effects.of("inventory.forget_requested")] == first


async def test_an_order_still_in_motion_never_expires() -> None:
    world = await charging_world()  # the charge is awaited: a deadline is armed
    assert not has_ended(world.state)
    assert await world.expiry.tick(NOW + timedelta(days=400)) == 0
    completed = await completed_world()
    await completed.send(cancel())  # a refund under way
    assert expires_at(completed.state, RETENTION) is None
    await completed.send(refund_failed(retryable=False))  # refused for good: an operator acts
    assert expires_at(completed.state, RETENTION) is None


async def test_a_change_before_the_signal_is_applied_starts_the_retention_again() -> None:
    world = await completed_world()
    assert await world.expiry.tick(DUE) == 1
    (signal,) = signals(world)
    late_cancel = cancel().model_copy(update={"deadline": DUE + timedelta(seconds=5)})
    await world.send(late_cancel, at=DUE)  # the buyer cancels first: a refund
    assert await world.saga.handle(signal.encode(), now=DUE) == "stale"
    assert ORDER in world.table
    assert world.effects.of("inventory.forget_requested") == []


async def test_a_retired_or_forgotten_order_takes_no_more_messages() -> None:
    world = await completed_world()
    assert await expire(world, DUE) == "retired"
    assert await world.send(cancel(), at=DUE) == "unknown"
    answer = world.effects.of("command.answered")[-1]
    assert (answer.data["outcome"], answer.data["code"]) == ("rejected", "ORDER_NOT_CANCELLABLE")
    assert world.effects.of("payment.refund_requested") == []

    assert await expire(world, DUE) == "forgotten"
    assert await world.send(cancel(), at=DUE) == "unknown"
    assert world.effects.of("command.answered")[-1].data["code"] == "ORDER_NOT_CANCELLABLE"
    late = StockReleased(order_id=ORDER, product_id="p1", reservation_id=f"{ORDER}:p1",
                         quantity=0)
    world.effects.clear()
    assert await world.send(late, at=DUE) == "unknown"
    assert ORDER not in world.table
    assert world.effects.emitted == []


async def test_a_new_watch_finds_due_orders_in_the_table_and_sends_a_batch_per_tick() -> None:
    world = await completed_world()
    for n in range(BATCH + 5):
        world.table[f"copy-{n}"] = {**world.state, "orderId": f"copy-{n}"}
    watch = RetentionWatch(world.table, world.effects, RETENTION)
    world.effects.clear()
    assert await watch.tick(DUE) == BATCH
    assert await watch.tick(DUE) == 6
    # Signalled and not yet applied: looked at again only after a while.
    assert await watch.tick(DUE) == 0
    later = DUE + timedelta(seconds=retention.RESIGNAL_SECONDS)
    assert await watch.tick(later) == BATCH


async def test_an_entry_due_beyond_the_horizon_waits_for_a_later_rescan() -> None:
    world = await completed_world()
    watch = RetentionWatch(world.table, world.effects, RETENTION)
    assert await watch.tick(NOW) == 0  # its first look: due in an hour, not held
    assert await watch.tick(DUE) == 0  # no rescan since
    watch.rescan(DUE)
    assert await watch.tick(DUE) == 1
