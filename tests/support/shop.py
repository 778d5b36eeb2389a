"""A shop driven over REST for the browser tests: accounts, products, orders, refunds.

The browser tests' stack issues access tokens that live a few seconds, so an account
signs in again whenever the gateway says its token ran out.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp

from tests.support.files import eventually

PASSWORD = "correct horse battery"
ENDS = frozenset({"completed", "rejected", "payment_failed", "cancelled", "refunded"})
Money = dict[str, Decimal]


@dataclass
class Account:
    """A registered user who signs in (again) on demand."""

    http: aiohttp.ClientSession
    email: str
    user_id: str
    token: str = field(default="", repr=False)

    async def login(self) -> None:
        """Take a fresh access token."""
        body = {"email": self.email, "password": PASSWORD}
        async with self.http.post("/v1/auth/login", json=body) as response:
            assert response.status == 200, await response.text()
            self.token = (await response.json())["accessToken"]

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call as this user; its JSON body (None when empty)."""
        for _ in range(3):
            if not self.token:
                await self.login()
            sent = {**(headers or {}), "Authorization": f"Bearer {self.token}"}
            async with self.http.request(method, path, json=body, headers=sent) as response:
                text = await response.text()
                if response.status == 401:  # the token ran out between two calls
                    self.token = ""
                    continue
                if response.status == 503:  # nothing was applied: a busy worker
                    await asyncio.sleep(1)
                    continue
                assert response.status == expect, f"{method} {path}: {response.status} {text}"
                return await response.json() if text else None
        raise AssertionError(f"{method} {path} kept answering 401/503")

    async def status(self, path: str) -> int:
        """The status ``GET path`` answers this user (for endpoints that may be absent)."""
        for _ in range(3):
            if not self.token:
                await self.login()
            headers = {"Authorization": f"Bearer {self.token}"}
            async with self.http.get(path, headers=headers) as response:
                if response.status != 401:
                    return response.status
                self.token = ""
        return 401


async def register(http: aiohttp.ClientSession, role: str, name: str) -> Account:
    """A new account of ``role`` (a worker still settling answers 503: retried)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": name, "role": role}
    for _ in range(30):
        async with http.post("/v1/auth/register", json=body) as response:
            if response.status != 503:
                assert response.status == 201, await response.text()
                return Account(http, email, (await response.json())["userId"])
        await asyncio.sleep(1)
    raise AssertionError("registration kept answering 503")


async def product(seller: Account, name: str, price: str, currency: str, stock: int = 50) -> str:
    """A product with stock, once the catalog shows that stock."""
    created = await seller.call("POST", "/v1/products", {
        "name": name, "description": "", "category": "Home", "price": price,
        "currency": currency, "stock": stock}, expect=201)
    product_id: str = created["productId"]

    async def stocked() -> bool:
        shown = await seller.call("GET", f"/v1/products/{product_id}")
        return bool(shown["stock"] == stock)

    await eventually(stocked, f"the stock of {name}", 30)
    return product_id


async def order(buyer: Account, product_id: str, quantity: int) -> str:
    """An order of one line, paid with the simulator's card that succeeds."""
    placed = await buyer.call(
        "POST", "/v1/orders",
        {"items": [{"productId": product_id, "quantity": quantity}], "paymentMethod": "tok_visa"},
        headers={"Idempotency-Key": uuid.uuid4().hex}, expect=202)
    order_id: str = placed["orderId"]
    return order_id


async def settled(buyer: Account, order_id: str, until: frozenset[str] = ENDS) -> dict[str, Any]:
    """The order once its status is one of ``until``."""
    async def done() -> dict[str, Any] | None:
        shown: dict[str, Any] = await buyer.call("GET", f"/v1/orders/{order_id}")
        return shown if shown["status"] in until else None

    found: dict[str, Any] = await eventually(done, f"order {order_id} to reach {set(until)}", 60)
    return found


def add(money: Money, currency: str, amount: Decimal) -> None:
    """``money[currency] += amount``."""
    money[currency] = money.get(currency, Decimal(0)) + amount


def as_text(money: Money) -> str:
    """Money as the page writes it for machines: ``"EUR 12.50|USD 75.00"``."""
    return "|".join(f"{c} {money[c]:.2f}" for c in sorted(money))
