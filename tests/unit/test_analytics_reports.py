"""Reports from closed minute windows: grouping by day, product and seller, and CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.analytics_reports import group, to_csv


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
