"""One window's metrics as plain JSON, and what each fact adds to them (pure).

Money is kept per currency as decimal strings and never summed across currencies.
Distinct counts (viewers, active users) are counted by the decider, which owns the
sets; here they are plain counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

Metrics = dict[str, Any]
# One fact as it travels (``streams.events.analytics.AnalyticsFact`` as JSON, camelCase):
# the windows stage reads thousands a second, and validating each into a model again was
# a tenth of the worker's time; the facts stage built them from validated models.
Fact = Mapping[str, Any]
Money = dict[str, str]
COUNTERS = (
    "orders", "units", "refundedOrders", "productViews", "registrations", "uploads",
    "searches", "checkouts", "paymentsFailed", "lateEvents", "viewers", "activeUsers",
)
MONEY = ("revenue", "refunds")
# Per-product figures are kept for a window's leading products only: a window is one table
# value (and one changelog record, at most 1 MB), and a marketplace's day may see far more
# products than that holds. Pruned a quarter over the bound at a time, so the cost of
# ranking is spread over many facts. The window's own totals are always exact.
PRODUCTS_KEPT = 2000
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


def apply(metrics: Metrics, fact: Fact) -> None:
    """Add ``fact`` (an ``AnalyticsFact`` as JSON) to ``metrics`` (distinct counts excepted,
    see module docstring)."""
    kind = fact["kind"]
    currency = fact.get("currency")
    if kind in ("order", "refund") and currency is not None:
        amount = Decimal(fact.get("amount") or 0)
        if kind == "order":
            metrics["orders"] += 1
            metrics["units"] += int(fact.get("units", 0))
            add_money(metrics["revenue"], currency, amount)
            by = metrics["ordersBy"]
            by[currency] = by.get(currency, 0) + 1
        else:
            metrics["refundedOrders"] += 1
            add_money(metrics["refunds"], currency, amount)
        for line in fact.get("lines", ()):
            product = _product(metrics, line["productId"])
            if kind == "order":
                product["orders"] += 1
                product["units"] += int(line["units"])
                add_money(product["revenue"], currency, Decimal(line["amount"]))
            else:
                add_money(product["refunds"], currency, Decimal(line["amount"]))
        return
    counter = _COUNTED.get(kind)
    if counter is not None:
        metrics[counter] += 1
    product_id = fact.get("productId")
    if kind == "view" and product_id is not None:
        _product(metrics, product_id)["views"] += 1


def _product(metrics: Metrics, product_id: str) -> dict[str, Any]:
    products: dict[str, Any] = metrics["products"]
    if product_id not in products:
        if len(products) >= PRODUCTS_KEPT + PRODUCTS_KEPT // 4:
            _keep_leading(products)
        products[product_id] = {"orders": 0, "units": 0, "views": 0, "revenue": {}, "refunds": {}}
    entry: dict[str, Any] = products[product_id]
    return entry


def _keep_leading(products: dict[str, Any]) -> None:
    """Keep the ``PRODUCTS_KEPT`` leading products (orders, units, then views)."""
    ranked = sorted(products.items(), key=lambda item: (
        -item[1]["orders"], -item[1]["units"], -item[1]["views"], item[0]))
    products.clear()
    products.update(ranked[:PRODUCTS_KEPT])


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
