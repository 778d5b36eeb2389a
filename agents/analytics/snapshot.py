"""The dashboard snapshot of one scope, built from its windows (pure).

"Today" is the UTC day of ``now``; ``lastHour`` the 60 minutes ending with the current
one (oldest first); ``visitorsNow`` the distinct viewers of the last five minutes (the
current one included), from each minute's distinct viewers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from agents.analytics import metrics
from agents.analytics.windows import MINUTE_MS, Window
from streams.envelope import format_time

TOP = 10


def _time(ms: int) -> str:
    return format_time(datetime.fromtimestamp(ms / 1000, UTC))


def visitors_now(minutes: Iterable[Iterable[str]]) -> int:
    """Distinct viewers across the given minutes' viewers."""
    return len(set().union(*minutes))


def build(
    seller_id: str | None,
    *,
    now_ms: int,
    day: Window | None,
    minutes: Mapping[int, Window],
    visitors: Iterable[Iterable[str]],
    name_of: Callable[[str], str | None],
) -> dict[str, Any]:
    """The contract's snapshot as JSON (camelCase)."""
    today = day["metrics"] if day is not None else metrics.empty()
    current = now_ms - now_ms % MINUTE_MS
    buckets = []
    for start in range(current - 59 * MINUTE_MS, current + 1, MINUTE_MS):
        window = minutes.get(start)
        m = window["metrics"] if window is not None else metrics.empty()
        buckets.append({
            "start": _time(start), "orders": m["orders"],
            "revenue": metrics.money_list(m["revenue"]),
            "productViews": m["productViews"], "registrations": m["registrations"],
        })
    ranked = sorted(
        ((pid, p) for pid, p in today["products"].items() if p["orders"]),
        key=lambda item: (-item[1]["orders"], -item[1]["units"], item[0]),
    )[:TOP]
    return {
        "scope": {"sellerId": seller_id},
        "asOf": _time(now_ms),
        "today": {
            "orders": today["orders"],
            "units": today["units"],
            "revenue": metrics.money_list(today["revenue"]),
            "refunds": metrics.money_list(today["refunds"]),
            "netRevenue": metrics.money_list(metrics.net(today)),
            "averageOrderValue": metrics.money_list(metrics.average_order_value(today)),
            "registrations": today["registrations"],
            "activeUsers": today["activeUsers"],
            "productViews": today["productViews"],
            "conversionRate": metrics.conversion(today),
            "uploads": today["uploads"],
        },
        "visitorsNow": visitors_now(visitors),
        "lastHour": buckets,
        "topProducts": [
            {"productId": pid, "name": name_of(pid), "orders": p["orders"],
             "units": p["units"], "revenue": metrics.money_list(p["revenue"])}
            for pid, p in ranked
        ],
    }


def same(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    """Whether two snapshots say the same thing (their ``asOf`` aside)."""
    if a is None:
        return False
    return {**a, "asOf": None} == {**b, "asOf": None}
