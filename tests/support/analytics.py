"""Helpers for the analytics tests: what the numbers must be, computed from placed orders."""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from config import Settings
from mercato.admin import create_admin
from tests.support.orders import PASSWORD, Client, stock_is

Money = dict[str, Decimal]


@dataclasses.dataclass
class Expected:
    """One scope's order numbers."""

    orders: int = 0
    units: int = 0
    revenue: Money = dataclasses.field(default_factory=lambda: defaultdict(Decimal))
    refunds: Money = dataclasses.field(default_factory=lambda: defaultdict(Decimal))

    def net(self) -> Money:
        return {c: self.revenue.get(c, Decimal(0)) - self.refunds.get(c, Decimal(0))
                for c in set(self.revenue) | set(self.refunds)}


# Statuses an order reaches only once paid.
PAID_SINCE = frozenset({"paid", "completed", "refunded"})


def expected(orders: list[dict[str, Any]]) -> dict[str | None, Expected]:
    """Per scope (None: the marketplace): paid orders count, refunded ones count as refunds."""
    scopes: dict[str | None, Expected] = defaultdict(Expected)
    for order in orders:
        # By its status too, not only its history: after a worker crash mid-saga the read
        # model's history can lack the "paid" step of an order that completed (a saga
        # defect this analytics check is not about; see the crash tests of the orders).
        statuses = {order["status"], *(h["status"] for h in order["history"])}
        if not statuses & PAID_SINCE:
            continue
        for seller in (None, *{item["sellerId"] for item in order["items"]}):
            mine = [i for i in order["items"] if seller is None or i["sellerId"] == seller]
            amount = sum((Decimal(i["unitPrice"]) * i["quantity"] for i in mine), Decimal(0))
            scope = scopes[seller]
            scope.orders += 1
            scope.units += sum(i["quantity"] for i in mine)
            scope.revenue[order["currency"]] += amount
            if order["status"] == "refunded":
                scope.refunds[order["currency"]] += amount
    return scopes


def money(listed: list[dict[str, str]]) -> Money:
    """The contract's ``[{currency, amount}]`` as a dict, zeros dropped."""
    return {m["currency"]: Decimal(m["amount"]) for m in listed if Decimal(m["amount"])}


def nonzero(values: Money) -> Money:
    """``values`` without zero amounts."""
    return {c: v for c, v in values.items() if v}


def matches(numbers: dict[str, Any], want: Expected) -> bool:
    """Whether a snapshot's ``today`` (or a report row) says ``want``."""
    return (numbers["orders"] == want.orders and numbers["units"] == want.units
            and money(numbers["revenue"]) == nonzero(want.revenue)
            and money(numbers["refunds"]) == nonzero(want.refunds)
            and money(numbers["netRevenue"]) == nonzero(want.net()))


async def listed(client: Client, seller: dict[str, str], *, price: str, currency: str,
                 stock: int = 50) -> str:
    """A product of ``seller`` in ``currency``, once its stock is projected."""
    created = await client.post("/v1/products", headers=seller, json={
        "name": f"Item {uuid.uuid4().hex[:6]}", "category": "ebooks", "price": price,
        "currency": currency, "stock": stock, "fileIds": []})
    assert created.status == 201, await created.text()
    product_id: str = (await created.json())["productId"]
    await stock_is(client, product_id, stock)
    return product_id


async def admin(client: Client, settings: Settings) -> dict[str, str]:
    """A signed-in admin's Authorization header."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    assert await create_admin(settings, email=email, password=PASSWORD, name="Ops") == 0
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status == 200, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['accessToken']}"}
