"""Reports read day, hour and minute windows and sum to their minutes, on the real server.

The real analytics decider turns three days of orders, refunds and views into closed
windows of every size, stored through ``AnalyticsRepository.upsert_window``; the last
day is still open (its day window and current hour do not exist yet). Every report must
equal the sum of the closed minute windows in its range, as reports were first computed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast, get_args

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from agents.analytics.decider import AnalyticsDecider
from agents.analytics.facts import FactMapper, by_scope, facts_record
from config import Settings
from gateway.analytics.reports import GroupBy, group, to_csv
from gateway.identity.auth import TokenService
from mercato.embedded import Endpoints
from stores.analytics import WINDOWS, AnalyticsRepository
from stores.mongo import ensure_indexes
from stores.suggestions import SuggestionRepository
from streams.admin import ensure_topics
from streams.envelope import Envelope, new_event
from streams.events.analytics import AnalyticsTick, ProductViewed
from streams.events.money import OrderLine
from streams.events.orders import OrderPlaced, OrderStatusChanged
from tests.conftest import make_settings
from tests.support.http import gateway_client
from tests.support.recording import RecordingEffects

pytestmark = pytest.mark.integration
R = TypeVar("R")
Db = AsyncDatabase[dict[str, Any]]
FIRST = datetime(2026, 11, 28, 20, 3, 17, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 10, 30, 20, tzinfo=UTC)  # the last day and hour are open
GRACE = 120.0
SELLERS = {"P1": "S1", "P2": "S1", "P3": "S2"}
PRICES = {"P1": ("10.00", "USD"), "P2": ("2.25", "EUR"), "P3": ("7.10", "USD")}
# Ranges starting and ending mid-day, whole days, the open day, one hour, odd seconds.
RANGES = [
    ("2026-11-28T21:17:30+00:00", "2026-12-01T12:07:00+00:00"),
    ("2026-11-29T05:00:00+00:00", "2026-11-30T18:59:00+00:00"),
    ("2026-11-29T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
    ("2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"),
    ("2026-11-30T13:05:00+00:00", "2026-11-30T13:50:59.5+00:00"),
    ("2026-11-20T00:00:00+00:00", "2026-12-20T00:00:00+00:00"),
]


class StoreEffects(RecordingEffects):
    """The decider's effects: windows into the real store; published records dropped
    (these tests read MongoDB only)."""

    def __init__(self, repo: AnalyticsRepository, db: Db) -> None:
        super().__init__()
        self.store = repo
        # The decider also projects product popularity for suggestions, in the same database.
        self.suggestions = SuggestionRepository(db)

    def repo(self, cls: type[R]) -> R:
        if cls is SuggestionRepository:
            return cast(R, self.suggestions)
        assert cls is AnalyticsRepository
        return cast(R, self.store)

    async def emit(self, topic: str, envelope: Envelope) -> None:
        pass


def order_events(n: int, at: datetime) -> list[Envelope]:
    """Order ``n``: placed and paid at ``at``, every fifth one refunded a minute later."""
    order_id = f"O{n}"
    products = [p for i, p in enumerate(SELLERS) if (n >> i) & 1] or ["P3"]
    currency = PRICES[products[0]][1]
    items = [OrderLine(product_id=p, seller_id=SELLERS[p], quantity=1 + n % 3,
                       unit_price=Decimal(PRICES[p][0]), currency=currency)
             for p in products if PRICES[p][1] == currency]
    total = sum((i.unit_price * i.quantity for i in items), Decimal(0))
    events = [
        new_event(OrderPlaced(order_id=order_id, buyer_id=f"B{n % 7}", items=items, total=total,
                              currency=currency, placed_at=at),
                  key=order_id, source="test", occurred_at=at),
        status(order_id, "stock_reserved", "paid", at)]
    if n % 5 == 0:
        events.append(status(order_id, "completed", "refunded", at + timedelta(minutes=1)))
    return events


def status(order_id: str, previous: str, to: str, at: datetime) -> Envelope:
    return new_event(OrderStatusChanged.model_validate(
        {"orderId": order_id, "buyerId": "B1", "sellerIds": [], "previous": previous,
         "status": to, "at": at}), key=order_id, source="test", occurred_at=at)


def view(n: int, at: datetime) -> Envelope:
    product = list(SELLERS)[n % 3]
    return new_event(ProductViewed(product_id=product, seller_id=SELLERS[product],
                                   session_id=f"session-{n % 11}"),
                     key=f"session-{n % 11}", source="test", occurred_at=at)


class Feed:
    """The facts stage and the windows stage (the real decider) over dict tables."""

    def __init__(self, db: Db) -> None:
        self.mapper = FactMapper({})
        self.decider = AnalyticsDecider({}, StoreEffects(AnalyticsRepository(db), db),
                                        grace=GRACE)
        self.offset = 0

    async def records(self, *sources: Envelope) -> None:
        facts = [fact for source in sources for fact in self.mapper.facts(source)]
        for scope, facts_of_scope in by_scope(facts).items():
            await self.record(facts_record(scope, facts_of_scope, "test:0").encode())

    async def record(self, raw: bytes) -> None:
        await self.decider.handle(raw, partition=0, offset=self.offset)
        self.offset += 1

    async def tick(self, at: datetime) -> None:
        await self.record(new_event(AnalyticsTick(at=at), key="tick", source="test").encode())


async def trade(feed: Feed, at: datetime, stop: datetime, n: int) -> int:
    """An order every 23 minutes from ``at`` and views 9 and 18 minutes after each, until
    ``stop``; returns the next order's number."""
    while at + timedelta(minutes=18) < stop:
        await feed.records(*order_events(n, at), view(n, at + timedelta(minutes=9)),
                           view(n + 1, at + timedelta(minutes=18)))
        at, n = at + timedelta(minutes=23), n + 1
    return n


async def three_days(db: Db) -> None:
    """Three days and a half of trade, a straggler and a late event at midnight, and a
    seller whose first sale is today."""
    feed = Feed(db)
    # As the worker's timer does before any facts: a partition whose first record spans
    # minutes never closes the minutes behind that record's clock (its hour and day do).
    await feed.tick(FIRST)
    n = await trade(feed, FIRST, datetime(2026, 11, 30, 23, 50, tzinfo=UTC), 0)
    edge = datetime(2026, 11, 30, 23, 59, 10, tzinfo=UTC)
    for moment in (edge, edge + timedelta(seconds=100)):  # 23:59, and the day closes
        await feed.records(view(n, moment))
    # Within the grace: 23:59, its hour and its day are revised. Beyond: late, counted in
    # the present windows (00:00 of the open day).
    await feed.records(view(n, edge + timedelta(seconds=20)))
    await feed.records(view(n, edge - timedelta(minutes=10)))
    placed_at = datetime(2026, 12, 1, 8, 12, tzinfo=UTC)
    n = await trade(feed, datetime(2026, 12, 1, 0, 7, 17, tzinfo=UTC), placed_at, n + 1)
    # S3's first sale, in a closed hour of the open day: S3 has no day window at all.
    items = [OrderLine(product_id="P9", seller_id="S3", quantity=2, unit_price=Decimal("4.00"),
                       currency="USD")]
    await feed.records(
        new_event(OrderPlaced(order_id="O-S3", buyer_id="B1", items=items, total=Decimal(8),
                              currency="USD", placed_at=placed_at),
                  key="O-S3", source="test", occurred_at=placed_at),
        status("O-S3", "stock_reserved", "paid", placed_at))
    await trade(feed, placed_at + timedelta(minutes=1, seconds=17), NOW - timedelta(minutes=3), n)
    await feed.tick(NOW)


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One database (and topics, for the gateway) for the module: the data is built once."""
    settings = make_settings(stack, tmp_path_factory.mktemp("analytics-reports"))
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def db(env: Settings) -> AsyncIterator[Db]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env.mongo_url, tz_aware=True)
    database = mongo[env.mongo_database]
    await ensure_indexes(database)
    await three_days(database)
    try:
        yield database
    finally:
        await mongo.drop_database(env.mongo_database)
        await mongo.close()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def minutes(db: Db, start: datetime, end: datetime, scopes: list[str] | None,
                  sellers_only: bool = False) -> list[dict[str, Any]]:
    """The closed minute windows starting in [start, end): what reports first summed."""
    query: dict[str, Any] = {"size": "minute", "start": {"$gte": start, "$lt": end}}
    if scopes is not None:
        query["scope"] = {"$in": scopes}
    return [doc async for doc in db[WINDOWS].find(query)
            if not sellers_only or doc["sellerId"] is not None]


async def test_the_data_has_closed_days_and_an_open_one(db: Db) -> None:
    sizes = {(doc["scope"], doc["size"], doc["start"]) async for doc in db[WINDOWS].find({})}
    today = datetime(2026, 12, 1, tzinfo=UTC)
    assert ("marketplace", "day", today - timedelta(days=1)) in sizes
    assert ("marketplace", "day", today) not in sizes
    assert ("marketplace", "hour", today.replace(hour=9)) in sizes
    assert ("marketplace", "hour", today.replace(hour=10)) not in sizes
    assert ("seller:S3", "hour", today.replace(hour=8)) in sizes
    assert not any(scope == "seller:S3" and size == "day" for scope, size, _ in sizes)
    s3 = await db[WINDOWS].find_one({"scope": "seller:S3", "size": "hour"})
    assert s3 is not None
    assert s3["metrics"]["orders"] == 1
    revised = {(doc["scope"], doc["size"])
               async for doc in db[WINDOWS].find({"revision": {"$gt": 1}})}
    assert {size for _, size in revised} == {"minute", "hour", "day"}
    late = {(doc["scope"], doc["size"], doc["start"])
            async for doc in db[WINDOWS].find({"metrics.lateEvents": {"$gt": 0}})}
    assert ("marketplace", "minute", today) in late
    assert ("marketplace", "hour", today) in late


@pytest.mark.parametrize(("start", "end"), RANGES)
async def test_reports_equal_the_sums_of_their_minutes_from_fewer_windows(
    db: Db, start: str, end: str,
) -> None:
    repo = AnalyticsRepository(db)
    lo, hi = instant(start), instant(end)
    cases: list[tuple[list[str] | None, bool]] = [
        (["marketplace"], False), (["seller:S1"], False), (["seller:S3"], False), (None, True)]
    for scopes, sellers_only in cases:
        tiled = await repo.report_windows(start=lo, end=hi, scopes=scopes,
                                          sellers_only=sellers_only)
        reference = await minutes(db, lo, hi, scopes, sellers_only)
        for by in get_args(GroupBy):
            rows = group(tiled, by)
            assert rows == group(reference, by), (scopes, by)
            assert to_csv(rows, by) == to_csv(group(reference, by), by)
            assert not any({"viewers", "activeUsers"} & set(row) for row in rows)
        assert len(tiled) <= len(reference)
        if scopes == ["marketplace"] and hi - lo > timedelta(days=2):
            assert {doc["size"] for doc in tiled} == {"day", "hour", "minute"}
            assert len(tiled) * 5 < len(reference)


async def test_the_route_answers_the_sums_of_the_minutes(db: Db, env: Settings) -> None:
    admin = {"Authorization": "Bearer " + TokenService(env).issue_access(
        uuid.uuid4().hex, ["admin"])}
    start, end = RANGES[0]
    query = f"from={start.replace('+', '%2B')}&to={end.replace('+', '%2B')}"
    lo, hi = instant(start), instant(end)
    async with gateway_client(env) as client:
        for by in get_args(GroupBy):
            sellers = by == "seller"
            want = group(await minutes(db, lo, hi, None if sellers else ["marketplace"],
                                       sellers_only=sellers), by)
            response = await client.get(f"/v1/analytics/reports?{query}&groupBy={by}",
                                        headers=admin)
            assert response.status == 200, await response.text()
            assert (await response.json())["data"] == want
            csv = await client.get(f"/v1/analytics/reports?{query}&groupBy={by}",
                                   headers={**admin, "Accept": "text/csv"})
            assert await csv.text() == to_csv(want, by)
        mine = await client.get(f"/v1/analytics/reports?{query}&groupBy=product&sellerId=S1",
                                headers=admin)
        assert (await mine.json())["data"] == group(
            await minutes(db, lo, hi, ["seller:S1"]), "product")
