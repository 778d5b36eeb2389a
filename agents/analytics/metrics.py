"""One window's metrics as plain JSON, and what each fact adds to them (pure).

Money is kept per currency as decimal strings and never summed across currencies.
Distinct counts (viewers, active users) are counted by the decider, which owns the
sets; here they are plain counters.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from streams.events.analytics import AnalyticsFact

Metrics = dict[str, Any]
Money = dict[str, str]
COUNTERS = (
    "orders", "units", "refundedOrders", "productViews", "registrations", "uploads",
    "searches", "checkouts", "paymentsFailed", "lateEvents", "viewers", "activeUsers",
)
MONEY = ("revenue", "refunds")
# Each fact kind's counter, besides the order/refund money.
_COUNTED = {
    "view": "productViews", "registration": "registrations", "upload": "uploads",
    "search": "searches", "checkout": "checkouts", "payment_failed": "paymentsFailed",
}


def empty() -> Metrics:
    """The metrics of a window no fact reached yet."""
    return {**dict.fromkeys(COUNTERS, 0), "revenue": {}, "refunds": {}, "ordersBy": {},
            "products": {}}


def add_money(money: Money, currency: str, amount: Decimal) -> None:
    """``money[currency] += amount`` on decimal strings."""
    money[currency] = format(Decimal(money.get(currency, "0")) + amount, "f")


def apply(metrics: Metrics, fact: AnalyticsFact) -> None:
    """Add ``fact`` to ``metrics`` (distinct counts excepted, see module docstring)."""
    if fact.kind in ("order", "refund") and fact.currency is not None:
        amount = fact.amount or Decimal(0)
        if fact.kind == "order":
            metrics["orders"] += 1
            metrics["units"] += fact.units
            add_money(metrics["revenue"], fact.currency, amount)
            by = metrics["ordersBy"]
            by[fact.currency] = by.get(fact.currency, 0) + 1
        else:
            metrics["refundedOrders"] += 1
            add_money(metrics["refunds"], fact.currency, amount)
        for line in fact.lines:
            product = _product(metrics, line.product_id)
            if fact.kind == "order":
                product["orders"] += 1
                product["units"] += line.units
                add_money(product["revenue"], fact.currency, line.amount)
            else:
                add_money(product["refunds"], fact.currency, line.amount)
        return
    counter = _COUNTED.get(fact.kind)
    if counter is not None:
        metrics[counter] += 1
    if fact.kind == "view" and fact.product_id is not None:
        _product(metrics, fact.product_id)["views"] += 1


def _product(metrics: Metrics, product_id: str) -> dict[str, Any]:
    products: dict[str, Any] = metrics["products"]
    if product_id not in products:
        products[product_id] = {"orders": 0, "units": 0, "views": 0, "revenue": {}, "refunds": {}}
    entry: dict[str, Any] = products[product_id]
    return entry


def money_list(money: Money) -> list[dict[str, str]]:
    """``{"USD": "1.00"}`` as the contract's ``[{currency, amount}]``, by currency."""
    return [{"currency": c, "amount": money[c]} for c in sorted(money)]


def net(metrics: Metrics) -> Money:
    """Revenue minus refunds, per currency."""
    out: Money = {}
    for currency in sorted(set(metrics["revenue"]) | set(metrics["refunds"])):
        out[currency] = format(
            Decimal(metrics["revenue"].get(currency, "0"))
            - Decimal(metrics["refunds"].get(currency, "0")), "f")
    return out


def average_order_value(metrics: Metrics) -> Money:
    """Revenue per order in each currency (orders in that currency), to the cent."""
    out: Money = {}
    for currency, count in metrics["ordersBy"].items():
        if count:
            value = Decimal(metrics["revenue"].get(currency, "0")) / count
            out[currency] = format(value.quantize(Decimal("0.01")), "f")
    return out


def conversion(metrics: Metrics) -> float:
    """Orders per distinct product viewer (0 without viewers)."""
    viewers = int(metrics["viewers"])
    return round(int(metrics["orders"]) / viewers, 4) if viewers else 0.0


def metric_values(metrics: Metrics) -> dict[str, int | list[dict[str, str]]]:
    """Every published metric of a window (the ``analytics-windows`` records)."""
    values: dict[str, int | list[dict[str, str]]] = {
        name: int(metrics[name]) for name in COUNTERS
    }
    values["revenue"] = money_list(metrics["revenue"])
    values["refunds"] = money_list(metrics["refunds"])
    values["netRevenue"] = money_list(net(metrics))
    values["averageOrderValue"] = money_list(average_order_value(metrics))
    return values
