"""The analytics stages in process: facts, windows, watermark, grace, dedupe, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from pymongo.errors import AutoReconnect

from agents.analytics import metrics, windows
from agents.analytics.decider import AnalyticsDecider
from agents.analytics.facts import FactMapper, by_scope, facts_record
from agents.analytics.publisher import SnapshotPublisher
from gateway.http.ratelimit.policies import POLICIES, classify
from stores.analytics import AnalyticsRepository
from stores.suggestions import SuggestionRepository
from streams.envelope import Envelope, new_event
from streams.events.analytics import (
    AnalyticsFacts,
    AnalyticsTick,
    DashboardSnapshot,
    ProductViewed,
)
from streams.events.money import OrderLine
from streams.events.orders import OrderPlaced, OrderStatusChanged
from tests.support.recording import RecordingEffects

R = TypeVar("R")
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
GRACE = 120.0
SOURCE = "analytics:0"  # the source topic and partition of the facts records here


class FakeRepo:
    """The analytics read model as dicts (the real one is exercised end to end)."""

    def __init__(self) -> None:
        self.windows: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.down = False  # MongoDB unreachable: every write fails as pymongo's would

    async def upsert_window(self, window: dict[str, Any]) -> bool:
        key = f"{window['scope']}|{window['size']}|{window['start']}"
        if key in self.windows and self.windows[key]["revision"] > window["revision"]:
            return False
        self.windows[key] = window
        return True

        self.down = False  # MongoDB unreachable: every write fails as pymongo's would

    async def put_snapshot(self, scope: str, snapshot: dict[str, Any]) -> None:
        if self.down:
            raise AutoReconnect("127.0.0.1:27017: connection refused")
        self.snapshots[scope] = snapshot


class FakePopularity:
    """What the marketplace's hour windows recorded for suggestions: (hour, products)."""

    def __init__(self) -> None:
        self.recorded: list[tuple[int, dict[str, Any]]] = []

    async def record_popularity(self, hour_ms: int, products: dict[str, Any]) -> int:
        self.recorded.append((hour_ms, dict(products)))
        return len(products)


class Effects(RecordingEffects):
    def __init__(self) -> None:
        super().__init__()
        self.store = FakeRepo()
        self.popularity = FakePopularity()

    def repo(self, cls: type[R]) -> R:
        assert cls in (AnalyticsRepository, SuggestionRepository)
        store: Any = self.store if cls is AnalyticsRepository else self.popularity
        return store  # type: ignore[no-any-return]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def placed(order_id: str, lines: list[tuple[str, str, int, str]], currency: str = "USD",
           at: datetime = T0) -> Envelope:
    items = [OrderLine(product_id=p, seller_id=s, quantity=q, unit_price=Decimal(price),
                       currency=currency) for p, s, q, price in lines]
    total = sum((i.unit_price * i.quantity for i in items), Decimal(0))
    return new_event(OrderPlaced(order_id=order_id, buyer_id="B1", items=items, total=total,
                                 currency=currency, placed_at=at),
                     key=order_id, source="test", occurred_at=at)


def status(order_id: str, previous: str, to: str, at: datetime = T0) -> Envelope:
    return new_event(OrderStatusChanged.model_validate(
        {"orderId": order_id, "buyerId": "B1", "sellerIds": [], "previous": previous,
         "status": to, "at": at}), key=order_id, source="test", occurred_at=at)


def view(product: str, seller: str | None, session: str, at: datetime) -> Envelope:
    return new_event(ProductViewed(product_id=product, seller_id=seller, session_id=session),
                     key=session, source="test", occurred_at=at)


def tick(at: datetime) -> bytes:
    return new_event(AnalyticsTick(at=at), key="tick", source="test").encode()


class Pipeline:
    """Both stages over dict tables; every record lands in partition 0."""

    def __init__(self) -> None:
        self.orders: dict[str, Any] = {}
        self.table: dict[str, Any] = {}
        self.effects = Effects()
        self.mapper = FactMapper(self.orders)
        self.offset = 0
        self.restart()

    def restart(self) -> None:
        """A new process over the same (restored) tables: in-memory state is gone."""
        self.decider = AnalyticsDecider(self.table, self.effects, grace=GRACE)

    def records(self, *sources: Envelope) -> list[bytes]:
        """The facts stage's records for ``sources`` read as one batch."""
        facts = [fact for source in sources for fact in self.mapper.facts(source)]
        records = [facts_record(scope, group, SOURCE) for scope, group in by_scope(facts).items()]
        for record in records:  # the windows stage reads them unvalidated: they must conform
            AnalyticsFacts.model_validate(record.data)
        return [record.encode() for record in records]

    async def handle(self, raw: bytes, offset: int | None = None) -> str:
        """The facts stage's next record (or a redelivered one, at ``offset``)."""
        if offset is None:
            offset = self.offset
            self.offset += 1
        return await self.decider.handle(raw, partition=0, offset=offset)

    async def feed(self, *sources: Envelope) -> list[str]:
        """Each source as a batch of its own; the outcome of each record."""
        outcomes = []
        for source in sources:
            for record in self.records(source):
                outcomes.append(await self.handle(record))
        return outcomes

    async def tick(self, at: datetime) -> str:
        return await self.handle(tick(at))

    def window(self, scope: str, size: str, start: datetime) -> dict[str, Any] | None:
        return windows.window(self.table, scope, size, ms(start))

    def published(self, metric: str) -> list[tuple[str, int, Any]]:
        return [(e.key, e.data["revision"], e.data["value"])
                for e in self.effects.on("analytics-windows") if e.data["metric"] == metric]


@pytest.fixture
def pipe() -> Pipeline:
    return Pipeline()


async def test_an_order_counts_once_paid_per_scope_and_its_refund_once_refunded(
    pipe: Pipeline,
) -> None:
    await pipe.feed(placed("O1", [("P1", "S1", 2, "10.00"), ("P2", "S2", 1, "5.50")]))
    await pipe.feed(status("O1", "stock_reserved", "paid"))
    await pipe.feed(status("O1", "completed", "refunded", T0 + timedelta(seconds=5)))
    market = pipe.window("marketplace", "day", T0.replace(hour=0))
    s1 = pipe.window("seller:S1", "minute", T0)
    assert market is not None
    assert s1 is not None
    assert market["metrics"]["orders"] == 1
    assert market["metrics"]["units"] == 3
    assert market["metrics"]["revenue"] == {"USD": "25.50"}
    assert market["metrics"]["refunds"] == {"USD": "25.50"}
    assert s1["metrics"]["revenue"] == {"USD": "20.00"}
    assert s1["metrics"]["products"]["P1"]["units"] == 2
    assert pipe.window("seller:S2", "hour", T0) is not None


def windows_only(table: dict[str, Any]) -> dict[str, Any]:
    """The table without the partition's meta (which every record's offset moves)."""
    return {k: v for k, v in table.items() if not k.startswith("m|")}


async def test_a_redelivered_event_changes_nothing(pipe: Pipeline) -> None:
    order = placed("O1", [("P1", "S1", 1, "3.00")])
    paid = status("O1", "stock_reserved", "paid")
    await pipe.feed(order, paid)
    before = windows_only(pipe.table)
    # Redelivered source events: the same facts in new records.
    assert set(await pipe.feed(order, paid)) == {"1 duplicate"}
    assert windows_only(pipe.table) == before
    pipe.restart()
    assert set(await pipe.feed(paid)) == {"1 duplicate"}
    # A redelivered record (a crash before its offset was committed).
    assert await pipe.handle(pipe.records(paid)[0], offset=1) == "duplicate record"
    assert windows_only(pipe.table) == before


class Crash(Exception):
    pass


class CrashAt(dict[str, Any]):
    """A table whose ``n``-th write (or delete) from now raises: a crash mid-record."""

    def __init__(self, data: dict[str, Any], n: int) -> None:
        super().__init__(data)
        self.left = n

    def _count(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise Crash

    def __setitem__(self, key: str, value: Any) -> None:
        self._count()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._count()
        super().__delitem__(key)


def crash_scenario(kind: str) -> tuple[list[Envelope], list[Envelope]]:
    """Facts already applied, then one batch whose record closes, revises and opens windows
    (``closes``), or one that also forgets the earlier day's (``forgets``)."""
    before = [placed("O1", [("P1", "S1", 1, "3.00")], at=T0),
              status("O1", "stock_reserved", "paid", T0),
              view("P1", "S1", "sess-1", T0 + timedelta(seconds=5))]
    if kind == "forgets":
        return before, [view("P1", "S1", "sess-2", T0 + timedelta(days=1, hours=2))]
    batch = [view("P1", "S1", "sess-2", T0 + timedelta(seconds=70)),  # closes T0's minute
             view("P1", "S1", "sess-3", T0 + timedelta(seconds=20)),  # revises it
             view("P1", "S1", "sess-3", T0 + timedelta(seconds=75)),
             view("P1", "S1", "sess-4", T0 - timedelta(minutes=10))]  # late
    return before, batch


@pytest.mark.parametrize("kind", ["closes", "forgets"])
@pytest.mark.parametrize("writes", range(0, 45))
async def test_a_crash_anywhere_in_a_record_still_counts_it_once(kind: str, writes: int) -> None:
    before, batch = crash_scenario(kind)
    reference = Pipeline()
    await reference.feed(*before)
    [record, *_] = reference.records(*batch)
    await reference.handle(record)
    await reference.tick(T0)  # windows are emitted by ticks

    pipe = Pipeline()
    await pipe.feed(*before)
    offset = pipe.offset
    crashing = CrashAt(pipe.table, writes)
    decider = AnalyticsDecider(crashing, pipe.effects, grace=GRACE)
    try:
        await decider.handle(record, partition=0, offset=offset)
    except Crash:
        pass
    else:  # the record needs fewer writes than this: nothing left to test
        assert crashing.left >= 0
    pipe.table.clear()
    pipe.table.update(crashing)
    pipe.restart()
    await pipe.handle(record, offset=offset)  # redelivered after the restart
    await pipe.handle(record, offset=offset)  # and once more: a no-op
    pipe.offset = offset + 1
    # The first tick after a restart emits the closed windows again (an emission the
    # crash lost: the record's facts may not touch every window its sweep closed).
    await pipe.tick(T0)
    assert windows_only(pipe.table) == windows_only(reference.table)
    final = {k: v for k, v in pipe.effects.store.windows.items()}
    assert final == reference.effects.store.windows


async def test_a_failed_emission_is_retried_with_its_record(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", None, "a", T0 + timedelta(seconds=10)))
    await pipe.tick(T0 + timedelta(seconds=30))  # the first tick's re-emission is done
    store = pipe.effects.store
    real = store.upsert_window
    failures = [ConnectionError("MongoDB stepped down")]

    async def flaky(window: dict[str, Any]) -> bool:
        if failures:
            raise failures.pop()
        return await real(window)

    store.upsert_window = flaky  # type: ignore[method-assign]
    record, offset = tick(T0 + timedelta(seconds=66)), pipe.offset  # 5 s of wall slack
    with pytest.raises(ConnectionError):
        await pipe.handle(record)
    assert f"marketplace|minute|{ms(T0)}" not in store.windows
    # ``guarded`` retries the record: applied already, but its emission is still owed.
    assert await pipe.handle(record, offset=offset) == "tick: 1 emitted"
    assert store.windows[f"marketplace|minute|{ms(T0)}"]["revision"] == 1
    assert not any(k.startswith("e|") for k in pipe.table)


async def test_a_partitions_first_record_indexes_every_minute_it_spans(pipe: Pipeline) -> None:
    # The first record after a deployment (reading history) spans minutes and hours.
    [record] = pipe.records(view("P1", None, "a", T0 + timedelta(seconds=10)),
                            view("P1", None, "b", T0 + timedelta(hours=3)))
    await pipe.handle(record)
    await pipe.tick(T0 + timedelta(hours=3))
    assert f"marketplace|minute|{ms(T0)}" in pipe.effects.store.windows
    assert f"marketplace|hour|{ms(T0)}" in pipe.effects.store.windows
    await pipe.feed(view("P1", None, "c", T0 + timedelta(days=3)))
    assert [k for k in pipe.table if str(ms(T0)) in k] == []


async def test_windows_close_when_the_clock_passes_them_even_when_idle(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", "S1", "sess-1", T0 + timedelta(seconds=10)))
    await pipe.tick(T0 + timedelta(seconds=64))  # the wall time leaves 5 s of slack
    assert pipe.published("productViews") == []
    await pipe.tick(T0 + timedelta(seconds=65))
    keys = {key for key, _, _ in pipe.published("productViews")}
    assert f"marketplace|productViews|minute|{ms(T0)}" in keys
    assert f"seller:S1|productViews|minute|{ms(T0)}" in keys
    assert all(rev == 1 for _, rev, _ in pipe.published("productViews"))
    assert f"marketplace|minute|{ms(T0)}" in pipe.effects.store.windows


async def test_windows_opened_before_a_restart_close_after_it(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", "S1", "sess-1", T0 + timedelta(seconds=10)))
    pipe.restart()  # the table is what the changelog restores; nothing else survives
    await pipe.tick(T0 + timedelta(minutes=61))
    closed = {(k, v) for k, _, v in pipe.published("productViews")}
    assert (f"marketplace|productViews|minute|{ms(T0)}", 1) in closed
    assert (f"marketplace|productViews|hour|{ms(T0)}", 1) in closed


async def test_a_late_event_within_the_grace_revises_its_window(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", "S1", "sess-1", T0 + timedelta(seconds=10)))
    await pipe.feed(view("P1", "S1", "sess-2", T0 + timedelta(seconds=70)))  # closes T0's minute
    await pipe.tick(T0 + timedelta(seconds=70))  # emits it
    assert await pipe.feed(view("P1", "S1", "sess-3", T0 + timedelta(seconds=20))) == [
        "1 applied", "1 applied"]
    await pipe.tick(T0 + timedelta(seconds=71))
    revisions = [(rev, value) for key, rev, value in pipe.published("productViews")
                 if key == f"marketplace|productViews|minute|{ms(T0)}"]
    assert revisions == [(1, 1), (2, 2)]
    assert pipe.effects.store.windows[f"marketplace|minute|{ms(T0)}"]["revision"] == 2


async def test_a_batch_revises_a_window_once(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", None, "sess-1", T0 + timedelta(seconds=10)))
    await pipe.tick(T0 + timedelta(seconds=65))
    [record] = pipe.records(*(view("P1", None, f"s-{i}", T0 + timedelta(seconds=20 + i))
                              for i in range(5)))
    assert await pipe.handle(record) == "5 applied"
    # Many records revising it between two ticks: emitted once, with the last revision.
    assert await pipe.feed(view("P1", None, "s-9", T0 + timedelta(seconds=30))) == ["1 applied"]
    await pipe.tick(T0 + timedelta(seconds=66))
    revisions = [(rev, value) for key, rev, value in pipe.published("productViews")
                 if key == f"marketplace|productViews|minute|{ms(T0)}"]
    assert revisions == [(1, 1), (3, 7)]


async def test_an_event_beyond_the_grace_is_counted_late_and_not_applied(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", None, "sess-1", T0 + timedelta(minutes=10)))
    old = view("P1", None, "sess-2", T0)  # 10 minutes behind, the grace is 2
    assert await pipe.feed(old) == ["1 late"]
    assert await pipe.feed(old) == ["1 duplicate"]
    now = pipe.window("marketplace", "minute", T0 + timedelta(minutes=10))
    assert now is not None
    assert now["metrics"]["productViews"] == 1
    assert now["metrics"]["lateEvents"] == 1
    assert pipe.window("marketplace", "minute", T0) is None


async def test_a_backlog_after_an_outage_longer_than_the_grace_is_applied_not_late(
    pipe: Pipeline,
) -> None:
    await pipe.feed(view("P1", None, "sess-1", T0))
    # The worker was away for ten minutes; the timer's wall time closed the windows...
    await pipe.tick(T0 + timedelta(minutes=10))
    assert (f"marketplace|productViews|minute|{ms(T0)}", 1, 1) in pipe.published("productViews")
    # ...but only event time moves the watermark: the backlog still counts.
    backlog = [view("P1", None, f"b-{i}", T0 + timedelta(seconds=30 + i)) for i in range(3)]
    assert await pipe.feed(*backlog) == ["1 applied"] * 3
    minute = pipe.window("marketplace", "minute", T0)
    assert minute is not None
    assert minute["metrics"]["productViews"] == 4
    assert minute["metrics"]["lateEvents"] == 0
    assert minute["closed"]
    # A straggler of a minute the wall time passed opens its window closed.
    assert await pipe.feed(view("P1", None, "b-9", T0 + timedelta(seconds=90))) == ["1 applied"]
    later = pipe.window("marketplace", "minute", T0 + timedelta(seconds=60))
    assert later is not None
    assert later["closed"]
    assert later["revision"] == 1
    await pipe.tick(T0 + timedelta(minutes=10, seconds=1))
    assert f"marketplace|minute|{ms(T0) + 60_000}" in pipe.effects.store.windows


async def test_a_lagging_source_is_judged_by_its_own_progress(pipe: Pipeline) -> None:
    # After an outage the orders' facts are read first, up to now...
    orders = [status("O1", "stock_reserved", "paid", T0 + timedelta(minutes=10))]
    await pipe.feed(placed("O1", [("P1", "S1", 1, "3.00")], at=T0 + timedelta(minutes=10)))
    [paid] = [facts_record(scope, group, "orders:0").encode()
              for scope, group in by_scope(pipe.mapper.facts(orders[0])).items()
              if scope == "marketplace"]
    await pipe.handle(paid)
    # ...then the client events of the same ten minutes, from their own partition.
    views = [view("P1", None, f"v-{i}", T0 + timedelta(seconds=20 * i)) for i in range(30)]
    [record] = pipe.records(*views)
    assert await pipe.handle(record) == "30 applied"
    day = pipe.window("marketplace", "day", T0.replace(hour=0))
    assert day is not None
    assert (day["metrics"]["productViews"], day["metrics"]["orders"]) == (30, 1)
    assert day["metrics"]["lateEvents"] == 0
    # A source is still late beyond the grace of its own newest fact...
    assert await pipe.feed(view("P1", None, "old", T0 - timedelta(minutes=1))) == ["1 late"]
    # ...and beyond an hour behind the partition, whatever its own progress.
    [(_, fact)] = pipe.mapper.facts(view("P1", None, "far", T0 - timedelta(minutes=51)))
    far = facts_record("marketplace", [fact], "analytics:3")  # a source new to the partition
    assert await pipe.handle(far.encode()) == "1 late"


async def test_a_window_keeps_its_leading_products_only(pipe: Pipeline) -> None:
    kept = metrics.PRODUCTS_KEPT
    await pipe.feed(placed("O1", [("P-sold", "S1", 2, "4.00")]),
                    status("O1", "stock_reserved", "paid"))
    [record] = pipe.records(*(view(f"P{i}", None, f"s-{i}", T0 + timedelta(seconds=i % 50))
                              for i in range(2 * kept)))
    await pipe.handle(record)
    day = pipe.window("marketplace", "day", T0.replace(hour=0))
    assert day is not None
    products = day["metrics"]["products"]
    assert len(products) <= kept + kept // 4
    assert products["P-sold"]["orders"] == 1  # what sold is never the one dropped
    assert day["metrics"]["productViews"] == 2 * kept  # the totals stay exact
    assert day["metrics"]["orders"] == 1


async def test_seen_ids_are_forgotten_once_their_minute_is_final(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", None, "sess-1", T0))
    seen = {k for k in pipe.table if k.startswith("s|")}
    assert seen
    final = T0 + timedelta(seconds=60 + GRACE + 60)
    # Wall time alone makes nothing final: a backlog of older facts may still be coming.
    await pipe.tick(final)
    assert seen <= set(pipe.table)
    await pipe.feed(view("P1", None, "sess-2", final))
    assert not seen & set(pipe.table)


async def test_windows_and_their_index_are_forgotten_in_time(pipe: Pipeline) -> None:
    await pipe.feed(view("P1", "S1", "sess-1", T0))
    await pipe.feed(view("P1", "S1", "sess-2", T0 + timedelta(days=1, hours=2)))
    old = [k for k in pipe.table if str(ms(T0)) in k or f"|{ms(T0.replace(hour=0))}" in k]
    assert old == []
    # What is left is the new day's: its windows, their index, visitors, marks and ids.
    assert all(not k.startswith(("w|", "v|")) or str(ms(T0) // 10**7) not in k
               for k in pipe.table)
    assert pipe.window("seller:S1", "day", T0.replace(hour=0)) is None
    assert not [k for k in pipe.table if k.startswith("d|") and f"|{ms(T0.replace(hour=0))}|" in k]


async def test_the_snapshot_has_the_contract_shape_and_is_pushed_only_when_it_changed(
    pipe: Pipeline,
) -> None:
    now = datetime.now(UTC)
    await pipe.feed(view("P1", "S1", "sess-1", now), view("P1", "S1", "sess-2", now))
    await pipe.feed(placed("O1", [("P1", "S1", 2, "10.00")], at=now),
                    status("O1", "stock_reserved", "paid", now))
    await pipe.feed(placed("O2", [("P1", "S1", 1, "7.00")], currency="EUR", at=now),
                    status("O2", "stock_reserved", "paid", now))
    publisher = SnapshotPublisher(pipe.table, pipe.effects, pipe.decider, owned=lambda: {0})
    assert await publisher.tick(now) == 2  # the marketplace and seller S1
    assert await publisher.tick(now) == 0  # nothing changed: nothing pushed
    assert sorted(channel for channel, _ in pipe.effects.pushed) == ["dashboard", "dashboard:S1"]
    seller = pipe.effects.store.snapshots["seller:S1"]
    DashboardSnapshot.model_validate(seller)
    assert seller["scope"] == {"sellerId": "S1"}
    assert seller["today"]["orders"] == 2
    assert seller["today"]["revenue"] == [{"currency": "EUR", "amount": "7.00"},
                                          {"currency": "USD", "amount": "20.00"}]
    assert seller["today"]["conversionRate"] == 1.0  # two orders, two distinct viewers
    assert seller["visitorsNow"] == 3  # two sessions and the buyer
    assert len(seller["lastHour"]) == 60
    assert seller["lastHour"][-1]["orders"] == 2
    assert seller["topProducts"][0]["productId"] == "P1"


async def test_a_mongodb_outage_skips_a_tick_and_the_next_one_publishes(pipe: Pipeline) -> None:
    # The tick runs on a Faust timer: raising would crash the worker (issue #14).
    now = datetime.now(UTC)
    await pipe.feed(view("P1", "S1", "sess-1", now))
    publisher = SnapshotPublisher(pipe.table, pipe.effects, pipe.decider, owned=lambda: {0})
    pipe.effects.store.down = True
    assert await publisher.tick(now) == 0
    assert pipe.effects.pushed == []
    pipe.effects.store.down = False
    # Same minute, nothing new fed: what the failed tick did not publish is still due.
    assert await publisher.tick(now) == 2
    assert sorted(pipe.effects.store.snapshots) == ["marketplace", "seller:S1"]


async def test_scopes_of_a_revoked_partition_are_not_published_here(pipe: Pipeline) -> None:
    now = datetime.now(UTC)
    await pipe.feed(view("P1", "S1", "sess-1", now))
    owned = {0}
    publisher = SnapshotPublisher(pipe.table, pipe.effects, pipe.decider, owned=lambda: owned)
    assert await publisher.tick(now) == 2
    stored = dict(pipe.effects.store.snapshots)
    owned.clear()  # a rebalance moved partition 0 away; its rows leave this worker's table
    pipe.table.clear()
    assert await publisher.tick(now + timedelta(seconds=1)) == 0
    assert len(pipe.effects.pushed) == 2
    assert pipe.effects.store.snapshots == stored
    assert pipe.decider.live == {}


def test_client_events_have_a_rate_limit_class_of_their_own() -> None:
    assert classify("POST", "/v1/analytics/events", POLICIES) is POLICIES["events"]
    assert classify("POST", "/v1/orders", POLICIES) is POLICIES["write"]
