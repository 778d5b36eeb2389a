"""Reports from closed windows: the range's tiling, grouping by day, product and seller, CSV."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.analytics.reports import group, to_csv
from stores.analytics import SIZES, tiles


def window(seller: str | None, start: datetime, orders: int, revenue: dict[str, str],
           products: list[dict[str, Any]] | None = None, **counts: int) -> dict[str, Any]:
    metrics = {"orders": orders, "units": orders, "revenue": revenue, "refunds": {},
               "ordersBy": dict.fromkeys(revenue, orders), **counts}
    return {"sellerId": seller, "start": start, "metrics": metrics, "products": products or []}


DAY1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DAY1_LATER = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
DAY2 = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


def test_days_add_up_their_minutes_per_currency() -> None:
    rows = group([
        window(None, DAY1, 2, {"USD": "20.00"}, productViews=5),
        window(None, DAY1_LATER, 1, {"USD": "1.50", "EUR": "3.00"}, lateEvents=1),
        window(None, DAY2, 1, {"EUR": "2.00"}),
    ], "day")
    assert [row["day"] for row in rows] == ["2026-12-01", "2026-12-02"]
    first = rows[0]
    assert (first["orders"], first["productViews"], first["lateEvents"]) == (3, 5, 1)
    assert first["revenue"] == [{"currency": "EUR", "amount": "3.00"},
                                {"currency": "USD", "amount": "21.50"}]
    assert first["netRevenue"] == first["revenue"]
    assert first["averageOrderValue"] == [{"currency": "EUR", "amount": "3.00"},
                                          {"currency": "USD", "amount": "7.17"}]


def test_products_and_sellers_are_rows_of_their_own() -> None:
    line = {"productId": "P1", "orders": 1, "units": 2, "views": 3,
            "revenue": {"USD": "4.00"}, "refunds": {"USD": "4.00"}}
    docs = [window("S1", DAY1, 1, {"USD": "4.00"}, [line]),
            window("S2", DAY1, 1, {"USD": "1.00"}), window("S1", DAY2, 1, {"USD": "4.00"}, [line])]
    products = group(docs, "product")
    assert products == [{"productId": "P1", "orders": 2, "units": 4, "productViews": 6,
                         "revenue": [{"currency": "USD", "amount": "8.00"}],
                         "refunds": [{"currency": "USD", "amount": "8.00"}],
                         "netRevenue": [{"currency": "USD", "amount": "0.00"}]}]
    assert [(r["sellerId"], r["orders"]) for r in group(docs, "seller")] == [("S1", 2), ("S2", 1)]


def test_csv_has_one_column_per_metric_and_currency() -> None:
    rows = group([window(None, DAY1, 1, {"USD": "2.00", "EUR": "1.00"})], "day")
    lines = to_csv(rows, "day").splitlines()
    header = lines[0].split(",")
    assert header[0] == "day"
    assert {"orders", "revenue_EUR", "revenue_USD", "netRevenue_USD"} <= set(header)
    assert lines[1].split(",")[header.index("revenue_USD")] == "2.00"
    assert to_csv([], "seller").splitlines() == ["sellerId"]


MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_range_mid_day_to_mid_day_is_days_then_hours_then_minutes_at_each_edge() -> None:
    plan = tiles(at("2026-12-01T10:17"), at("2026-12-04T05:42"))
    sizes = [size for size, _, _ in plan]
    assert sizes == ["minute"] * 43 + ["hour"] * 13 + ["day"] * 2 + ["hour"] * 5 + ["minute"] * 42
    assert plan[0] == ("minute", at("2026-12-01T10:17"), at("2026-12-01T10:18"))
    assert plan[43] == ("hour", at("2026-12-01T11:00"), at("2026-12-01T12:00"))
    assert plan[56] == ("day", at("2026-12-02T00:00"), at("2026-12-03T00:00"))
    assert plan[-1] == ("minute", at("2026-12-04T05:41"), at("2026-12-04T05:42"))


def test_whole_days_are_day_windows_only_and_a_short_range_minutes_only() -> None:
    assert tiles(at("2026-12-01T00:00"), at("2026-12-03T00:00")) == [
        ("day", at("2026-12-01T00:00"), at("2026-12-02T00:00")),
        ("day", at("2026-12-02T00:00"), at("2026-12-03T00:00"))]
    # 23:30 to 00:30 crosses midnight without a whole hour: minutes only.
    assert {size for size, _, _ in tiles(at("2026-12-01T23:30"), at("2026-12-02T00:30"))} == {
        "minute"}
    assert len(tiles(at("2026-12-01T00:00"), at("2026-12-31T23:59"))) == 30 + 23 + 59


def test_instants_between_minutes_keep_the_minutes_starting_in_the_range() -> None:
    # Minute windows starting in [10:00:30, 10:05:30) are 10:01 to 10:05.
    assert tiles(at("2026-12-01T10:00:30"), at("2026-12-01T10:05:30")) == [
        ("minute", at(f"2026-12-01T10:0{m}"), at(f"2026-12-01T10:0{m + 1}")) for m in range(1, 6)]
    assert tiles(at("2026-12-01T10:00:10"), at("2026-12-01T10:00:50")) == []


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
       st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=31)))
def test_tiles_are_aligned_and_span_exactly_the_minutes_of_the_range(
        naive: datetime, length: timedelta) -> None:
    start = naive.replace(tzinfo=UTC)
    end = start + length
    plan = tiles(start, end)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for size, lo, hi in plan:
        assert hi - lo == SIZES[size]
        assert (lo - epoch) % SIZES[size] == timedelta(0)
    assert all(a[2] == b[1] for a, b in itertools.pairwise(plan))
    minutes = [m for m in (start.replace(second=0, microsecond=0) + i * MINUTE
                           for i in range(length // MINUTE + 2)) if start <= m < end]
    if minutes:
        assert (plan[0][1], plan[-1][2]) == (minutes[0], minutes[-1] + MINUTE)
    else:
        assert plan == []
    # Coarsest first: no tile lies in a whole day (or a minute in a whole hour) of the range.
    for size, lo, _ in plan:
        for coarser in list(SIZES)[:list(SIZES).index(size)]:
            whole = lo - (lo - epoch) % SIZES[coarser]
            assert not (minutes[0] <= whole and whole + SIZES[coarser] <= minutes[-1] + MINUTE)
