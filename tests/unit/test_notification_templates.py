"""Every notification template: produced once by the agent that owns its event, even redelivered.

Each producer is driven with recording effects; the notifications agent turns the
outbox messages into notifications and keeps the unread count, pushed on user:{id}.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast, get_args

import pytest

from agents.catalog.decider import CatalogDecider
from agents.catalog.reviews import ReviewDecider
from agents.catalog.stock_alerts import StockAlerts
from agents.files.decider import FilesDecider
from agents.identity.users import UsersDecider
from agents.notifications.decider import NotificationsDecider
from agents.notifications.templates import IN_APP, render
from agents.runtime.messages import message_id, request_message
from stores.files import FileMeta, FileRepository, Grant
from stores.notifications import Notification, NotificationRepository
from stores.product_lookup import ProductLookup, ProductView
from streams.envelope import derived_id, new_event
from streams.events.files import FilePermissionGranted
from streams.events.inventory import StockChanged
from streams.events.notifications import (
    MessageRequested,
    NotificationDeleteRequested,
    NotificationReadAllRequested,
    NotificationReadRequested,
    Template,
)
from streams.events.products import ReviewSubmitRequested
from streams.events.saga import PaymentFailed, PaymentRefunded
from streams.events.users import ProfileUpdateRequested
from tests.support.recording import RecordingEffects
from tests.unit import test_catalog_agent as catalog
from tests.unit import test_order_saga as saga
from tests.unit.test_identity_agents import FakeUsers

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_every_template_has_in_app_text_and_no_secret_reaches_it() -> None:
    assert set(IN_APP) == set(get_args(Template))
    title, body = render("password_reset", {"token": "s3cret"})
    assert "s3cret" not in title + body
    # A parameter the producer did not send is blank, never a failed record.
    assert render("stock_low", {"productName": "Lamp"})[1].startswith("\u201cLamp\u201d has  left")


# --- the notifications agent: the unread count --------------------------------------------------


class Notes:
    """In-memory notifications read model, as the MongoDB one behaves."""

    def __init__(self) -> None:
        self.docs: dict[str, Notification] = {}

    async def create(self, notification: Notification) -> bool:
        return self.docs.setdefault(notification.notification_id, notification) is notification

    async def owned(self, user_id: str, notification_id: str) -> Notification | None:
        found = self.docs.get(notification_id)
        return found if found is not None and found.user_id == user_id else None

    async def mark_read(self, user_id: str, notification_id: str) -> None:
        if await self.owned(user_id, notification_id):
            self.docs[notification_id] = dataclasses.replace(self.docs[notification_id], read=True)

    async def mark_all_read(self, user_id: str, *, up_to: datetime) -> None:
        for n in list(self.docs.values()):
            if n.user_id == user_id and n.created_at <= up_to:
                self.docs[n.notification_id] = dataclasses.replace(n, read=True)

    async def delete(self, user_id: str, notification_id: str) -> None:
        if await self.owned(user_id, notification_id):
            del self.docs[notification_id]

    async def unread_count(self, user_id: str) -> int:
        return sum(1 for n in self.docs.values() if n.user_id == user_id and not n.read)


class Addresses(FakeUsers):
    """Users with an address, and their own stock alert thresholds."""

    def __init__(self) -> None:
        super().__init__()
        self.thresholds: dict[str, int] = {}

    async def emails(self, user_ids: Any) -> dict[str, str]:
        return {u: self.docs[u]["email"] for u in user_ids if u in self.docs}

    async def stock_low_threshold(self, user_id: str) -> int | None:
        return self.thresholds.get(user_id)


class Effects(RecordingEffects):
    """Recording effects with the read models these agents use."""

    def __init__(self) -> None:
        super().__init__()
        self.notes = Notes()
        self.fake_users = Addresses()
        self.fakes: dict[type[Any], Any] = {NotificationRepository: self.notes}

    @property
    def users(self) -> Any:
        return self.fake_users

    def repo(self, cls: type[Any]) -> Any:
        return self.fakes[cls]

    def unread_pushes(self) -> list[tuple[str, str, int]]:
        return [(c, e.id, e.data["unread"]) for c, e in self.pushed
                if e.type == "notification.unread_changed"]


class Sink:
    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []

    async def deliver(self, message: dict[str, Any]) -> None:
        self.delivered.append(message)


def message(message_id: str, template: Template = "file_shared", **params: Any) -> bytes:
    return new_event(MessageRequested(message_id=message_id, user_id="u-1", template=template,
                                      params=params), key="u-1", source="tests").encode()


def change(
    model: type[NotificationReadRequested] | type[NotificationDeleteRequested],
    notification_id: str,
) -> bytes:
    command = model(user_id="u-1", notification_id=notification_id,
                    deadline=NOW + timedelta(seconds=5), reply_to="gw")
    return new_event(command, key="u-1", source="tests").encode()


@pytest.fixture
def fx() -> Effects:
    effects = Effects()
    effects.fake_users.add("u-1")
    return effects


async def test_a_message_without_address_goes_to_the_accounts_and_counts_once(fx: Effects) -> None:
    sink = Sink()
    decider = NotificationsDecider({}, fx, sink)
    first = message("m-1", fileName="plan.pdf")
    assert await decider.handle(first, now=NOW) == "delivered"
    assert await decider.handle(first, now=NOW + timedelta(seconds=3)) == "delivered"
    assert [(m["to"], m["template"]) for m in sink.delivered] == [
        ("u-1@example.com", "file_shared")]
    [note] = fx.notes.docs.values()
    assert (note.type, note.body) == ("file_shared", "You can now read \u201cplan.pdf\u201d.")
    # The redelivery pushes the very same count under the very same id: clients dedupe it.
    pushes = fx.unread_pushes()
    assert len(pushes) == 2
    assert pushes[0] == pushes[1]
    assert pushes[0][0::2] == ("user:u-1", 1)
    assert await decider.handle(message("m-2"), now=NOW) == "delivered"
    assert fx.unread_pushes()[-1][2] == 2 == await fx.notes.unread_count("u-1")


async def test_a_user_without_address_is_still_told_in_app(fx: Effects) -> None:
    sink = Sink()
    decider = NotificationsDecider({}, fx, sink)
    del fx.fake_users.docs["u-1"]
    assert await decider.handle(message("m-1"), now=NOW) == "delivered"
    assert sink.delivered == []
    assert [n.type for n in fx.notes.docs.values()] == ["file_shared"]


async def test_read_and_delete_push_the_count_only_when_it_moves(fx: Effects) -> None:
    decider = NotificationsDecider({}, fx, Sink())
    for mid in ("m-1", "m-2", "m-3"):
        await decider.handle(message(mid), now=NOW)
    one, two, three = (derived_id(m, "notification") for m in ("m-1", "m-2", "m-3"))
    fx.clear()
    read = change(NotificationReadRequested, one)
    await decider.handle(read, now=NOW)
    await decider.handle(read, now=NOW)  # redelivered: same push
    await decider.handle(change(NotificationReadRequested, one), now=NOW)  # already read
    await decider.handle(change(NotificationDeleteRequested, one), now=NOW)  # a read one
    await decider.handle(change(NotificationDeleteRequested, two), now=NOW)
    await decider.handle(change(NotificationDeleteRequested, "nope"), now=NOW)
    pushes = fx.unread_pushes()
    assert [count for _, _, count in pushes] == [2, 2, 1]
    assert pushes[0] == pushes[1]
    assert {c for c, _, _ in pushes} == {"user:u-1"}
    assert await fx.notes.unread_count("u-1") == 1
    assert list(fx.notes.docs) == [three]


async def test_a_replayed_cause_never_pushes_a_stale_count_nor_a_deleted_notification(
    fx: Effects,
) -> None:
    decider = NotificationsDecider({}, fx, Sink())
    first, second = message("m-1"), message("m-2")
    await decider.handle(first, offset=1, now=NOW)
    await decider.handle(second, offset=2, now=NOW)
    one, two = (derived_id(m, "notification") for m in ("m-1", "m-2"))
    read = change(NotificationReadRequested, two)
    await decider.handle(read, now=NOW)
    await decider.handle(change(NotificationDeleteRequested, one), now=NOW)
    fx.clear()
    # Old causes again, after later changes (copies sent again, at later offsets): the badge
    # shows the last count pushed, so nothing stale, nor the deleted notification, is pushed.
    await decider.handle(second, offset=12, now=NOW + timedelta(minutes=1))
    await decider.handle(read, now=NOW + timedelta(minutes=1))
    await decider.handle(first, offset=11, now=NOW + timedelta(minutes=1))
    assert fx.pushed == []
    # While its count is still the count, a replay repeats its push as it was.
    third = message("m-3")
    await decider.handle(third, offset=3, now=NOW)
    await decider.handle(third, offset=3, now=NOW + timedelta(minutes=1))
    pushes = fx.unread_pushes()
    assert [count for _, _, count in pushes] == [1, 1]
    assert pushes[0] == pushes[1]
    # The deleted notification stays deleted; the created record repeats under its own id.
    assert set(fx.notes.docs) == {two, derived_id("m-3", "notification")}
    assert [e.data["notificationId"] for e in fx.of("notification.created")][:2] == [two, one]


async def test_read_all_reads_what_existed_once_and_its_replay_reads_nothing_newer(
    fx: Effects,
) -> None:
    decider = NotificationsDecider({}, fx, Sink())
    for mid in ("m-1", "m-2"):
        await decider.handle(message(mid), now=NOW)
    fx.clear()
    every = new_event(NotificationReadAllRequested(user_id="u-1", reply_to="gw",
                                                   deadline=NOW + timedelta(seconds=5)),
                      key="u-1", source="tests").encode()
    assert await decider.handle(every, now=NOW) == "accepted"
    assert [count for _, _, count in fx.unread_pushes()] == [0]
    assert await decider.handle(message("m-3"), now=NOW + timedelta(seconds=1)) == "delivered"
    fx.clear()
    assert await decider.handle(every, now=NOW + timedelta(seconds=9)) == "accepted"  # replayed
    assert fx.pushed == []  # the count is 1 now, pushed by m-3
    assert [n.read for n in fx.notes.docs.values()] == [True, True, False]
    assert [e.data["outcome"] for e in fx.on("replies")] == ["accepted"]
    # Nothing unread: accepted, and no count pushed, since none moved.
    await decider.handle(change(NotificationReadRequested, derived_id("m-3", "notification")),
                         now=NOW)
    fx.clear()
    again = new_event(NotificationReadAllRequested(user_id="u-1", reply_to="gw",
                                                   deadline=NOW + timedelta(seconds=5)),
                      key="u-1", source="tests").encode()
    assert await decider.handle(again, now=NOW) == "accepted"
    assert fx.pushed == []
    late = NOW + timedelta(seconds=6)
    expired = new_event(NotificationReadAllRequested(user_id="u-1", reply_to="gw",
                                                     deadline=NOW), key="u-1", source="t")
    assert await decider.handle(expired.encode(), now=late) == "expired"


# --- the producers ----------------------------------------------------------------------------


def outbox(effects: RecordingEffects) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [(e.key, e.data["messageId"], e.data["template"], e.data["params"])
            for e in effects.on("outbox")]


async def test_a_failed_payment_tells_the_buyer_once() -> None:
    world = saga.World()
    await world.send(saga.requested())
    await world.send(saga.reserved("p1"))
    await world.send(saga.reserved("p2"))
    await world.send(PaymentFailed(order_id=saga.ORDER, payment_id="pay", code="declined",
                                   reason="card declined"))
    for raw in world.inbox:  # a crash before the commits: everything again
        await world.saga.handle(raw, now=saga.NOW + timedelta(minutes=1))
    sent = outbox(world.effects)
    assert [(k, t) for k, _, t, _ in sent] == [(saga.BUYER, "payment_failed")] * 2
    assert world.effects.of("order.status_changed")[-1].data["status"] == "payment_failed"
    assert sent[0] == sent[1]
    assert sent[0][3] == {"orderId": saga.ORDER, "total": "15.00", "currency": "USD",
                          "reason": "declined: card declined"}
    assert world.effects.on("outbox")[0].data["to"] is None  # the account's, found later


async def test_a_charge_past_its_deadline_tells_the_buyer() -> None:
    world = saga.World()
    await world.send(saga.requested())
    await world.send(saga.reserved("p1"))
    await world.send(saga.reserved("p2"))
    await world.watch.tick(saga.NOW + timedelta(seconds=10))
    signal = world.effects.on("order-saga")[-1]
    await world.saga.handle(signal.encode(), now=saga.NOW + timedelta(seconds=10))
    [(key, _, template, params)] = outbox(world.effects)
    assert (key, template) == (saga.BUYER, "payment_failed")
    assert "did not answer in time" in params["reason"]


async def test_a_refund_tells_the_buyer_once_and_completion_is_still_told() -> None:
    world = await saga.completed_world()
    await world.send(saga.cancel())
    refunded = PaymentRefunded(order_id=saga.ORDER, payment_id="pay", refund_id="r",
                               amount=Decimal("15.00"), currency="USD")
    assert await world.send(refunded) == "refunded"
    await world.saga.handle(world.inbox[-1], now=saga.NOW)  # redelivered
    templates = [(k, t) for k, _, t, _ in outbox(world.effects)]
    assert templates.count((saga.BUYER, "order_refunded")) == 2
    assert templates.count((saga.BUYER, "order_completed")) == 1
    ids = {m for _, m, t, _ in outbox(world.effects) if t == "order_refunded"}
    assert len(ids) == 1
    # No message of the saga carries an address: the notifications agent uses the account's.
    assert {e.data["to"] for e in world.effects.on("outbox")} == {None}


async def test_one_cause_tells_each_user_with_a_message_of_their_own() -> None:
    effects = RecordingEffects()
    cause = new_event(StockChanged(product_id="p1", current_stock=1, change=-1, reason="adjusted"),
                      key="p1", source="tests")
    for user in ("u-1", "u-2"):
        await request_message(effects, cause, user_id=user, template="stock_low", params={},
                              source="tests")
    ids = [e.data["messageId"] for e in effects.on("outbox")]
    assert ids == [message_id(cause.id, u, "stock_low") for u in ("u-1", "u-2")]
    assert ids[0] != ids[1]
    # The saga makes its ids the same way, and they are the ones it always made.
    world = await saga.completed_world()
    sent = outbox(world.effects)
    assert sent
    assert all(m == message_id(saga.ORDER, k, cast(Template, t)) for k, m, t, _ in sent)
    assert (saga.BUYER, derived_id(saga.ORDER, "message", saga.BUYER, "order_completed")) in {
        (k, m) for k, m, _, _ in sent}


class Files(FileRepository):
    """One file, owned by u-owner; grants remembered by event id."""

    def __init__(self) -> None:  # no database
        self.meta = FileMeta("f-1", "u-owner", "plan.pdf", 10, "application/pdf", "0" * 64,
                             None, NOW, False, {"status": "none"}, None, (), 1)
        self.events: set[str] = set()

    async def get(self, file_id: str) -> FileMeta | None:
        return self.meta if file_id == "f-1" else None

    async def grant(self, grant: Grant, *, event_id: str) -> bool:
        fresh = event_id not in self.events
        self.events.add(event_id)
        return fresh


def grant(source: Literal["owner", "purchase"]) -> bytes:
    granted = FilePermissionGranted(file_id="f-1", user_id="u-1", source=source,
                                    granted_by="u-owner", granted_at=NOW)
    return new_event(granted, key="f-1", source="gateway/gw").encode()


async def test_a_file_shared_by_its_owner_tells_the_grantee_once_and_a_purchase_does_not() -> None:
    effects = Effects()
    effects.fakes[FileRepository] = Files()
    decider = FilesDecider(effects, max_image_bytes=1024)
    shared = grant("owner")
    assert await decider.handle(shared) == "granted"
    assert await decider.handle(shared) == "granted"
    assert await decider.handle(grant("purchase")) == "granted"
    sent = outbox(effects)
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert sent[0][0::2] == ("u-1", "file_shared")
    assert sent[0][3] == {"fileId": "f-1", "fileName": "plan.pdf"}


async def test_a_review_tells_the_seller_once() -> None:
    effects = catalog.CatalogEffects()
    products: dict[str, Any] = {}
    decider = CatalogDecider(products, effects, ReviewDecider({}, products, effects))
    await decider.handle(catalog.create(), now=catalog.NOW)
    review = catalog.raw(ReviewSubmitRequested(review_id="r-1", rating=4, comment="ok",
                                               **catalog.common("b1")))
    assert await decider.handle(review, now=catalog.NOW) == "reviewed"
    assert await decider.handle(review, now=catalog.NOW) == "reviewed"
    sent = [(e.key, e.id, e.data["template"], e.data["params"]) for e in effects.on("outbox")]
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert sent[0][0::2] == ("s1", "review_received")
    assert sent[0][3] == {"productId": "p1", "productName": "Lamp", "reviewId": "r-1",
                          "rating": 4}


class Lookup(ProductLookup):
    def __init__(self) -> None:  # no database
        self.products = {"p1": ProductView("p1", "s1", Decimal("1"), "USD", "active", (), "Lamp")}

    async def many(self, product_ids: Any) -> dict[str, ProductView]:
        return {p: self.products[p] for p in product_ids if p in self.products}


def stock(current: int, delta: int, event_id: str | None = None) -> bytes:
    changed = StockChanged(product_id="p1", current_stock=current, change=delta,
                           reason="reserved" if delta < 0 else "released")
    return new_event(changed, key="p1", source="agents.inventory", event_id=event_id).encode()


async def test_stock_low_is_told_when_the_stock_falls_below_the_threshold() -> None:
    effects = Effects()
    effects.fakes[ProductLookup] = Lookup()
    alerts = StockAlerts(effects, default_threshold=5)
    crossing = stock(4, -2, "e-1")
    outcomes = [await alerts.handle(raw) for raw in (
        stock(6, -1), crossing, crossing, stock(3, -1), stock(7, 4), stock(2, -5, "e-2"))]
    assert outcomes == ["enough", "low", "low", "enough", "rising", "low"]
    sent = outbox(effects)
    assert [(k, t) for k, _, t, _ in sent] == [("s1", "stock_low")] * 3
    assert sent[0] == sent[1]  # the redelivered change: the same message
    assert sent[2][1] != sent[0][1]  # fell below again after recovering: told again
    assert sent[0][3] == {"productId": "p1", "productName": "Lamp", "currentStock": 4,
                          "threshold": 5}


async def test_a_sellers_own_threshold_wins_and_zero_turns_alerts_off() -> None:
    effects = Effects()
    effects.fakes[ProductLookup] = Lookup()
    alerts = StockAlerts(effects, default_threshold=5)
    effects.fake_users.thresholds["s1"] = 20
    assert await alerts.handle(stock(19, -2)) == "low"
    effects.fake_users.thresholds["s1"] = 0
    assert await alerts.handle(stock(0, -19)) == "enough"
    assert await StockAlerts(effects, default_threshold=5).handle(
        new_event(StockChanged(product_id="ghost", current_stock=0, change=-9,
                               reason="adjusted"), key="ghost", source="t").encode()
    ) == "unknown"
    assert [p["threshold"] for _, _, _, p in outbox(effects)] == [20]


async def test_a_seller_sets_and_clears_their_own_threshold(fx: Effects) -> None:
    decider = UsersDecider({}, fx)

    def patch(**fields: Any) -> bytes:
        command = ProfileUpdateRequested(user_id="u-1", actor_id="u-1",
                                         deadline=NOW + timedelta(seconds=5), reply_to="gw",
                                         **fields)
        return new_event(command, key="u-1", source="gateway/gw").encode()

    assert await decider.handle(patch(stock_low_threshold=12), now=NOW) == "accepted"
    assert fx.fake_users.docs["u-1"]["stockLowThreshold"] == 12
    assert await decider.handle(patch(clear_stock_low_threshold=True), now=NOW) == "accepted"
    assert "stockLowThreshold" not in fx.fake_users.docs["u-1"]
    changed = [e.data for e in fx.on("users")]
    assert [c["changed"] for c in changed] == [["stockLowThreshold"]] * 2
    assert [c["stockLowThreshold"] for c in changed] == [12, None]


async def test_the_same_record_delivered_again_repeats_effects_that_never_happened(
    fx: Effects,
) -> None:
    # Decided, then the worker died before the record's effects were committed (they are
    # held until its group commits: agents.runtime.commit); the decision is in the table.
    table: dict[str, Any] = {}
    raw = message("m-1")
    await NotificationsDecider(table, fx, Sink()).handle(raw, offset=7, now=NOW)
    fx.clear()
    fx.notes.docs.clear()

    again = NotificationsDecider(table, fx, Sink())
    assert await again.handle(raw, offset=7, now=NOW + timedelta(seconds=3)) == "delivered"

    assert set(fx.notes.docs) == {derived_id("m-1", "notification")}
    assert [e.type for _, e in fx.pushed] == ["notification.created",
                                              "notification.unread_changed"]


async def test_a_later_copy_creates_what_a_dead_lettered_first_delivery_never_did(
    fx: Effects,
) -> None:
    # Decided, then dead-lettered before its commit (nothing created); re-driven at
    # another offset: the notification appears, so the count decided for it is right.
    table: dict[str, Any] = {}
    raw = message("m-1")
    await NotificationsDecider(table, fx, Sink()).handle(raw, offset=7, now=NOW)
    fx.notes.docs.clear()

    await NotificationsDecider(table, fx, Sink()).handle(raw, offset=40, now=NOW)

    assert set(fx.notes.docs) == {derived_id("m-1", "notification")}
    assert await fx.notes.unread_count("u-1") == 1
