"""The order saga's decisions with recording effects: flow, compensations, deadlines, redelivery."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from agents.saga.deadlines import DeadlineWatch
from agents.saga.decider import OrderSaga
from agents.saga.retention import RetentionWatch
from agents.saga.steps import Deadlines
from stores.orders import OrderRepository
from stores.product_lookup import ProductLookup, ProductView
from stores.users import UserRepository
from streams.envelope import Envelope, new_event
from streams.events.money import OrderLine
from streams.events.saga import (
    OrderCancelRequested,
    OrderRequested,
    OrderRetryRequested,
    PaymentCaptured,
    PaymentDeferred,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    StockRejected,
    StockReleased,
    StockReserved,
)
from tests.support.recording import RecordingEffects

R = TypeVar("R")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ORDER = "ord-1"
BUYER = "buyer-1"
RETENTION = 3600.0


class FakeOrders(OrderRepository):
    """Keeps the newest projected document per order, with the real version guard."""

    def __init__(self) -> None:  # no database
        self.docs: dict[str, dict[str, Any]] = {}
        self.writes = 0

    async def project(self, doc: dict[str, Any]) -> bool:
        current = self.docs.get(doc["_id"])
        if current is not None and current["version"] >= doc["version"]:
            return False
        self.docs[doc["_id"]] = doc
        self.writes += 1
        return True


class FakeProducts(ProductLookup):
    """Two products of two sellers, with files."""

    def __init__(self) -> None:  # no database
        self.products = {
            "p1": ProductView("p1", "seller-1", Decimal("10.00"), "USD", "active", ("f1", "f2")),
            "p2": ProductView("p2", "seller-2", Decimal("2.50"), "USD", "active", ()),
        }

    async def many(self, product_ids: Any) -> dict[str, ProductView]:
        return {p: self.products[p] for p in product_ids if p in self.products}


class FakeUsers(UserRepository):
    """Everyone has an email."""

    def __init__(self) -> None:  # no database
        pass

    async def emails(self, user_ids: Iterable[str]) -> dict[str, str]:
        return {user_id: f"{user_id}@example.com" for user_id in user_ids}


class SagaEffects(RecordingEffects):
    """Recording effects with the read models the saga uses."""

    def __init__(self) -> None:
        super().__init__()
        self.orders = FakeOrders()
        self.products = FakeProducts()
        self.fake_users = FakeUsers()

    @property
    def users(self) -> UserRepository:
        return self.fake_users

    def repo(self, cls: type[R]) -> R:
        fakes: dict[type[Any], Any] = {OrderRepository: self.orders, ProductLookup: self.products}
        return cast(R, fakes[cls])


class World:
    """A saga over a dict table, fed with messages, remembering what it was sent."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}
        self.effects = SagaEffects()
        self.watch = DeadlineWatch(self.table, self.effects)
        self.expiry = RetentionWatch(self.table, self.effects, RETENTION)
        deadlines = Deadlines(reserve=5, charge=5, refund=5, retention=RETENTION)
        self.saga = OrderSaga(self.table, self.effects, deadlines, on_commit=self.noted)
        self.inbox: list[bytes] = []

    def noted(self, state: dict[str, Any]) -> None:
        self.watch.note(state)
        self.expiry.note(state)

    async def send(self, payload: BaseModel, *, at: datetime = NOW) -> str:
        raw = new_event(payload, key=ORDER, source="test").encode()
        self.inbox.append(raw)
        return await self.saga.handle(raw, now=at)

    @property
    def state(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.table[ORDER])

    def types(self, topic: str) -> list[str]:
        return [e.type for e in self.effects.on(topic)]

    def statuses(self) -> list[str]:
        return [e.data["status"] for e in self.effects.of("order.status_changed")]


def requested(*, deadline: datetime = NOW + timedelta(seconds=5)) -> OrderRequested:
    lines = [
        OrderLine(product_id="p1", seller_id="seller-1", quantity=1, unit_price=Decimal("10.00"),
                  currency="USD"),
        OrderLine(product_id="p2", seller_id="seller-2", quantity=2, unit_price=Decimal("2.50"),
                  currency="USD"),
    ]
    return OrderRequested(order_id=ORDER, buyer_id=BUYER, items=lines, total=Decimal("15.00"),
                          currency="USD", payment_method="tok_visa", idempotency_key="k1",
                          reply_to="gw", deadline=deadline)


def reserved(pid: str) -> StockReserved:
    return StockReserved(order_id=ORDER, product_id=pid, reservation_id=f"{ORDER}:{pid}",
                         quantity=1)


def captured() -> PaymentCaptured:
    return PaymentCaptured(order_id=ORDER, payment_id="pay", provider="simulator",
                           reference="ref-1", amount=Decimal("15.00"), currency="USD")


def cancel() -> OrderCancelRequested:
    return OrderCancelRequested(order_id=ORDER, requested_by=BUYER, reply_to="gw",
                                deadline=NOW + timedelta(seconds=5))


async def completed_world() -> World:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    await world.send(reserved("p2"))
    assert await world.send(captured()) == "completed"
    return world


async def test_order_is_placed_reserved_charged_delivered_and_completed() -> None:
    world = World()
    assert await world.send(requested()) == "pending"
    reserves = world.effects.of("inventory.reserve_requested")
    assert [(e.key, e.data["reservationId"]) for e in reserves] == [
        ("p1", f"{ORDER}:p1"), ("p2", f"{ORDER}:p2")]
    answer = world.effects.of("command.answered")[0]
    assert answer.data["outcome"] == "accepted"
    assert answer.data["result"] == {"orderId": ORDER, "status": "pending"}
    assert world.effects.orders.docs[ORDER]["status"] == "pending"

    await world.send(reserved("p1"))
    assert world.effects.of("payment.charge_requested") == []
    await world.send(reserved("p2"))
    (charge,) = world.effects.of("payment.charge_requested")
    assert charge.data["idempotencyKey"] == f"{ORDER}:charge"
    assert charge.data["amount"] == "15.00"

    assert await world.send(captured()) == "completed"
    assert world.statuses() == ["stock_reserved", "paid", "delivered", "completed"]
    grants = world.effects.of("file.permission_granted")
    assert [(g.key, g.data["userId"], g.data["source"]) for g in grants] == [
        ("f1", BUYER, "purchase"), ("f2", BUYER, "purchase")]
    messages = world.effects.of("message.requested")
    assert {(m.key, m.data["template"]) for m in messages} == {
        (BUYER, "order_completed"), ("seller-1", "order_received"),
        ("seller-2", "order_received")}
    doc = world.effects.orders.docs[ORDER]
    assert doc["status"] == "completed"
    assert doc["sellerIds"] == ["seller-1", "seller-2"]
    assert doc["payment"] == {"status": "captured", "provider": "simulator", "reference": "ref-1"}
    assert [h["status"] for h in doc["history"]] == [
        "pending", "stock_reserved", "paid", "delivered", "completed"]
    channels = {c for c, e in world.effects.pushed if e.type == "order.status_changed"}
    assert channels == {f"order:{ORDER}", f"user:{BUYER}", "user:seller-1", "user:seller-2"}
    assert world.state["deadline"] is None


async def test_redelivering_every_message_changes_nothing_and_repeats_only_same_ids() -> None:
    world = await completed_world()
    state = dict(world.state)
    first_ids = {e.id for _, e in world.effects.emitted}
    world.effects.clear()
    outcomes = [await world.saga.handle(raw, now=NOW + timedelta(minutes=1))
                for raw in world.inbox]
    assert outcomes == ["duplicate"] * 3 + ["repeated"]
    assert world.state == state
    # Only the last message's plan re-runs, with the very same event ids.
    assert {e.id for _, e in world.effects.emitted} <= first_ids
    assert world.effects.of("payment.charge_requested") == []


async def test_a_rejected_line_releases_the_held_ones_in_reverse_and_rejects() -> None:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    outcome = await world.send(StockRejected(order_id=ORDER, product_id="p2",
                                             reservation_id=f"{ORDER}:p2", reason="out_of_stock"))
    assert outcome == "rejected"
    assert [e.key for e in world.effects.of("inventory.release_requested")] == ["p1"]
    assert world.state["history"][-1]["reason"] == "out of stock: p2"
    assert world.effects.of("payment.charge_requested") == []


async def test_a_declined_payment_releases_all_stock() -> None:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    await world.send(reserved("p2"))
    outcome = await world.send(PaymentFailed(order_id=ORDER, payment_id="pay", code="declined",
                                             reason="card declined"))
    assert outcome == "payment_failed"
    assert [e.key for e in world.effects.of("inventory.release_requested")] == ["p2", "p1"]
    assert world.effects.orders.docs[ORDER]["status"] == "payment_failed"


async def test_cancel_before_payment_releases_and_a_second_cancel_is_refused() -> None:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    assert await world.send(cancel()) == "cancelled"
    assert {e.key for e in world.effects.of("inventory.release_requested")} == {"p1", "p2"}
    await world.send(cancel())
    answer = world.effects.of("command.answered")[-1]
    assert (answer.data["outcome"], answer.data["code"]) == ("rejected", "ORDER_NOT_CANCELLABLE")
    # A reservation answered after the cancel is given back.
    world.effects.clear()
    await world.send(reserved("p2"))
    assert [e.key for e in world.effects.of("inventory.release_requested")] == ["p2"]


async def test_cancel_after_completion_refunds_then_releases_and_revokes() -> None:
    world = await completed_world()
    await world.send(cancel())
    (refund,) = world.effects.of("payment.refund_requested")
    assert refund.data["idempotencyKey"] == f"{ORDER}:refund"
    assert world.state["status"] == "completed"
    assert await world.send(PaymentRefunded(order_id=ORDER, payment_id="pay", refund_id="r",
                                            amount=Decimal("15.00"), currency="USD")) == "refunded"
    assert [e.key for e in world.effects.of("inventory.release_requested")] == ["p2", "p1"]
    assert [e.key for e in world.effects.of("file.permission_revoked")] == ["f1", "f2"]
    assert world.effects.orders.docs[ORDER]["payment"]["status"] == "refunded"


async def test_cancel_while_the_charge_is_in_flight_refunds_a_late_capture() -> None:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    await world.send(reserved("p2"))
    await world.send(cancel())
    assert world.state["phase"] == "cancelling"
    await world.send(captured())
    assert world.statuses()[-1] == "paid"
    assert len(world.effects.of("payment.refund_requested")) == 1
    assert world.effects.of("file.permission_granted") == []


async def test_a_passed_reserve_deadline_rejects_through_the_inbox() -> None:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    assert await world.watch.tick(NOW + timedelta(seconds=1)) == 0
    assert await world.watch.tick(NOW + timedelta(seconds=6)) == 1
    (signal,) = world.effects.on("order-saga")
    outcome = await world.saga.handle(signal.encode(), now=NOW + timedelta(seconds=6))
    assert outcome == "rejected"
    assert {e.key for e in world.effects.of("inventory.release_requested")} == {"p1", "p2"}
    # The same signal again (another tick, another worker) is a no-op.
    assert await world.saga.handle(signal.encode(), now=NOW + timedelta(seconds=7)) in (
        "duplicate", "repeated")
    world.watch.rescan()  # rebuilt from the table: the deadline is disarmed
    assert await world.watch.tick(NOW + timedelta(hours=1)) == 0


async def test_a_charge_timeout_fails_and_a_late_capture_is_refunded() -> None:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    await world.send(reserved("p2"))
    await world.watch.tick(NOW + timedelta(seconds=10))
    signal = Envelope.decode(world.effects.on("order-saga")[-1].encode())
    assert signal.data["step"] == "charge"
    assert await world.saga.handle(signal.encode(), now=NOW + timedelta(seconds=10)) == (
        "payment_failed")
    await world.send(captured())
    assert world.state["status"] == "payment_failed"
    assert len(world.effects.of("payment.refund_requested")) == 1
    await world.send(StockReleased(order_id=ORDER, product_id="p1",
                                   reservation_id=f"{ORDER}:p1", quantity=1))
    assert world.state["reservations"]["p1"] == "released"


async def test_an_order_request_past_its_deadline_creates_nothing() -> None:
    world = World()
    late = NOW + timedelta(seconds=10)
    assert await world.send(requested(), at=late) == "expired"
    assert ORDER not in world.table
    assert [e.type for e in world.effects.on("audit")] == ["command.expired"]


async def test_a_second_request_for_the_same_order_answers_without_a_second_saga() -> None:
    world = World()
    await world.send(requested())
    assert await world.send(requested()) == "replayed"
    assert len(world.effects.of("inventory.reserve_requested")) == 2
    assert [a.data["outcome"] for a in world.effects.of("command.answered")] == [
        "accepted", "accepted"]


# --- an unavailable provider: deferred charges, refunds retried, operators' retries ---------


def deferred(retry_after: float = 0.0) -> PaymentDeferred:
    return PaymentDeferred(order_id=ORDER, payment_id="pay", reason="circuit open",
                           retry_after=retry_after)


def refund_failed(*, retryable: bool = True) -> RefundFailed:
    return RefundFailed(order_id=ORDER, payment_id="pay", reason="provider down",
                        code="circuit_open" if retryable else None, retryable=retryable)


def refunded() -> PaymentRefunded:
    return PaymentRefunded(order_id=ORDER, payment_id="pay", refund_id="r",
                           amount=Decimal("15.00"), currency="USD")


def retry() -> OrderRetryRequested:
    return OrderRetryRequested(order_id=ORDER, requested_by="admin-1", reply_to="gw",
                               deadline=NOW + timedelta(hours=1))


async def fire(world: World, at: datetime) -> str:
    """Let the deadline timer look at ``at`` and apply the one signal it sends."""
    before = len(world.effects.on("order-saga"))
    assert await world.watch.tick(at) == 1
    signal = world.effects.on("order-saga")[before]
    return await world.saga.handle(signal.encode(), now=at)


async def charging_world() -> World:
    world = World()
    await world.send(requested())
    await world.send(reserved("p1"))
    await world.send(reserved("p2"))
    return world


async def test_a_deferred_charge_waits_is_sent_again_and_completes() -> None:
    world = await charging_world()
    assert await world.send(deferred()) == "stock_reserved"
    assert world.state["payment"]["status"] == "deferred"
    assert world.state["deadline"]["step"] == "charge_retry"
    assert world.effects.of("inventory.release_requested") == []
    assert await fire(world, NOW + timedelta(seconds=2)) == "stock_reserved"
    first, again = world.effects.of("payment.charge_requested")
    assert first.data["idempotencyKey"] == again.data["idempotencyKey"] == f"{ORDER}:charge"
    assert first.id != again.id
    # The re-send keeps the charge's own deadline.
    assert world.state["deadline"] == {"step": "charge", "at": world.state["chargeBy"]}
    assert await world.send(captured(), at=NOW + timedelta(seconds=3)) == "completed"


async def test_a_charge_deferred_until_its_deadline_fails_and_releases() -> None:
    world = await charging_world()
    await world.send(deferred(retry_after=60.0))  # the circuit stays open past the deadline
    assert world.state["deadline"]["step"] == "charge"
    assert await fire(world, NOW + timedelta(seconds=6)) == "payment_failed"
    assert "unavailable" in world.state["history"][-1]["reason"]
    assert [e.key for e in world.effects.of("inventory.release_requested")] == ["p2", "p1"]


async def test_a_cancel_while_the_charge_waits_cancels_at_once() -> None:
    world = await charging_world()
    await world.send(deferred())
    assert await world.send(cancel()) == "cancelled"
    assert world.effects.of("payment.refund_requested") == []
    assert {e.key for e in world.effects.of("inventory.release_requested")} == {"p1", "p2"}


async def test_a_failed_refund_is_sent_again_with_backoff_until_it_succeeds() -> None:
    world = await completed_world()
    await world.send(cancel())
    await world.send(refund_failed())
    assert world.state["payment"]["status"] == "refund_failed"
    doc = world.effects.orders.docs[ORDER]
    assert (doc["status"], doc["payment"]["status"]) == ("completed", "refund_failed")
    assert doc["deadline"]["step"] == "refund_retry"
    first_retry = datetime.fromisoformat(world.state["deadline"]["at"])
    await fire(world, first_retry)
    await world.send(refund_failed(), at=first_retry)
    second_retry = datetime.fromisoformat(world.state["deadline"]["at"])
    assert second_retry - first_retry == 2 * (first_retry - NOW)  # exponential
    await fire(world, second_retry)
    refunds = world.effects.of("payment.refund_requested")
    assert len(refunds) == 3
    assert {r.data["idempotencyKey"] for r in refunds} == {f"{ORDER}:refund"}
    assert len({r.id for r in refunds}) == 3
    assert await world.send(refunded(), at=second_retry) == "refunded"
    assert world.effects.orders.docs[ORDER]["payment"]["status"] == "refunded"
    assert world.state["deadline"] is None


async def test_an_unanswered_refund_is_sent_again() -> None:
    world = await completed_world()
    await world.send(cancel())
    await fire(world, NOW + timedelta(seconds=6))  # the refund's deadline: no answer
    assert world.state["payment"]["status"] == "refund_failed"
    await fire(world, datetime.fromisoformat(world.state["deadline"]["at"]))
    assert len(world.effects.of("payment.refund_requested")) == 2


async def test_a_second_cancel_while_refunding_sends_the_refund_again() -> None:
    world = await completed_world()
    await world.send(cancel())
    await world.send(refund_failed())
    await world.send(cancel())
    answer = world.effects.of("command.answered")[-1]
    assert answer.data["outcome"] == "accepted"
    assert len(world.effects.of("payment.refund_requested")) == 2
    assert world.state["payment"]["status"] == "refund_requested"


async def test_an_operator_retry_re_drives_only_a_stuck_order() -> None:
    world = await completed_world()
    await world.send(retry())
    answer = world.effects.of("command.answered")[-1]
    assert (answer.data["outcome"], answer.data["code"]) == ("rejected", "ORDER_NOT_STUCK")
    await world.send(cancel())
    await world.send(refund_failed(retryable=False))  # refused for good: an operator acts
    assert world.state["deadline"] is None
    assert world.state["payment"]["status"] == "refund_failed"
    await world.send(retry())
    assert world.effects.of("command.answered")[-1].data["outcome"] == "accepted"
    assert len(world.effects.of("payment.refund_requested")) == 2


async def test_an_operator_retry_applies_a_passed_deadline() -> None:
    world = World()
    await world.send(requested())
    assert await world.send(retry(), at=NOW + timedelta(seconds=6)) == "rejected"
    assert {e.key for e in world.effects.of("inventory.release_requested")} == {"p1", "p2"}


async def test_a_retry_for_an_unknown_order_is_not_found() -> None:
    world = World()
    assert await world.send(retry()) == "unknown"
    assert world.effects.of("command.answered")[-1].data["code"] == "NOT_FOUND"
