"""Reports from closed windows: rows grouped by UTC day, product or seller (pure).

The windows are minutes, hours and days that tile the range (``stores.analytics.tiles``);
each holds the sums of its minutes, so any tiling gives the same rows. Only additive
metrics are reported: distinct counts (``viewers``, ``activeUsers``, on day windows only)
do not add up across windows and are left out. Money stays per currency. CSV flattens
money into one column per currency.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC
from decimal import Decimal
from typing import Any, Literal

from agents.analytics import metrics

GroupBy = Literal["day", "product", "seller"]
COUNTS = ("orders", "units", "refundedOrders", "productViews", "registrations", "uploads",
          "searches", "checkouts", "paymentsFailed", "lateEvents")
PRODUCT_COUNTS = ("orders", "units", "views")
KEY_COLUMN: dict[str, str] = {"day": "day", "product": "productId", "seller": "sellerId"}


def _add(total: dict[str, Any], part: dict[str, Any], counts: Iterable[str]) -> None:
    for name in counts:
        total[name] = total.get(name, 0) + int(part.get(name, 0))
    for name in ("revenue", "refunds"):
        money = total.setdefault(name, {})
        for currency, amount in (part.get(name) or {}).items():
            metrics.add_money(money, currency, Decimal(amount))
    if "ordersBy" in part:
        by = total.setdefault("ordersBy", {})
        for currency, count in part["ordersBy"].items():
            by[currency] = by.get(currency, 0) + int(count)


def group(docs: Iterable[dict[str, Any]], by: GroupBy) -> list[dict[str, Any]]:
    """The report's rows, in key order."""
    totals: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if by == "product":
            for product in doc.get("products", []):
                _add(totals.setdefault(product["productId"], {}), product, PRODUCT_COUNTS)
            continue
        key = doc["start"].astimezone(UTC).date().isoformat() if by == "day" else doc["sellerId"]
        _add(totals.setdefault(str(key), {}), doc["metrics"], COUNTS)
    rows = []
    for key in sorted(totals):
        total = totals[key]
        total.setdefault("revenue", {})
        total.setdefault("refunds", {})
        row: dict[str, Any] = {KEY_COLUMN[by]: key}
        if by == "product":
            row |= {"orders": total["orders"], "units": total["units"],
                    "productViews": total["views"]}
        else:
            total.setdefault("ordersBy", {})
            row |= {name: total[name] for name in COUNTS}
            row["averageOrderValue"] = metrics.money_list(metrics.average_order_value(total))
        row["revenue"] = metrics.money_list(total["revenue"])
        row["refunds"] = metrics.money_list(total["refunds"])
        row["netRevenue"] = metrics.money_list(metrics.net(total))
        rows.append(row)
    return rows


def to_csv(rows: list[dict[str, Any]], by: GroupBy) -> str:
    """The rows as CSV: scalars as they are, money as one ``{metric}_{currency}`` column each."""
    columns: list[str] = [KEY_COLUMN[by]]
    flat_rows = []
    for row in rows:
        flat: dict[str, Any] = {}
        for name, value in row.items():
            if isinstance(value, list):
                for money in value:
                    flat[f"{name}_{money['currency']}"] = money["amount"]
            else:
                flat[name] = value
        for name in flat:
            if name not in columns:
                columns.append(name)
        flat_rows.append(flat)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(flat_rows)
    return out.getvalue()
