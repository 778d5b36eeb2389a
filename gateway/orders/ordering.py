"""Orders at the gateway: pricing from the catalog, saga commands, and who may see an order."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from aiohttp import web

from gateway.identity.auth import Principal
from gateway.orders.keys import ORDERS
from gateway.push.channels import OrderAccess
from gateway.runtime import commands
from stores.product_lookup import ProductLookup
from streams.errors import FieldError, InvalidInput, NotFound
from streams.events.money import OrderLine
from streams.events.saga import OrderCancelRequested, OrderRequested, OrderRetryRequested


def merge_quantities(items: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """One line per product (quantities summed), in first-seen order: one reservation each."""
    merged: dict[str, int] = {}
    for product_id, quantity in items:
        merged[product_id] = merged.get(product_id, 0) + quantity
    return list(merged.items())


async def price(
    lookup: ProductLookup, items: Sequence[tuple[str, int]]
) -> tuple[list[OrderLine], Decimal, str]:
    """Lines priced from the catalog, the total and the currency; 422 when not orderable."""
    merged = merge_quantities(items)
    products = await lookup.many(pid for pid, _ in merged)
    errors: list[FieldError] = []
    for index, (pid, _) in enumerate(merged):
        product = products.get(pid)
        if product is None:
            errors.append(FieldError(f"items.{index}.productId", "no such product"))
        elif not product.available:
            errors.append(FieldError(f"items.{index}.productId", "the product is archived"))
    if errors:
        raise InvalidInput("some products cannot be ordered", errors=errors,
                           code="PRODUCT_UNAVAILABLE")
    currencies = {products[pid].currency for pid, _ in merged}
    if len(currencies) > 1:
        raise InvalidInput(
            f"an order is paid in one currency; these products are in {sorted(currencies)}",
            code="MIXED_CURRENCIES",
        )
    lines = [
        OrderLine(product_id=pid, seller_id=products[pid].seller_id, quantity=quantity,
                  unit_price=products[pid].price, currency=products[pid].currency)
        for pid, quantity in merged
    ]
    total = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
    return lines, total, currencies.pop()


async def request_saga(
    request: web.Request, payload: OrderRequested | OrderCancelRequested | OrderRetryRequested
) -> dict[str, Any]:
    """Send a command to the order saga and wait for its answer; the result or a domain error."""
    return await commands.ask(request, payload)


def order_access(app: web.Application) -> OrderAccess:
    """The push hook: a buyer or a seller of the order may follow ``order:{id}``."""

    async def may_follow(principal: Principal, order_id: str) -> bool:
        parties = await app[ORDERS].parties(order_id)
        if parties is None:
            return False
        buyer, sellers = parties
        return principal.user_id == buyer or principal.user_id in sellers

    return may_follow


async def visible_order(
    request: web.Request, principal: Principal, order_id: str
) -> dict[str, Any]:
    """The order document if the caller is its buyer, one of its sellers, or an admin; else 404."""
    doc = await request.app[ORDERS].get(order_id)
    if doc is None or not (
        principal.is_admin or doc["buyerId"] == principal.user_id
        or principal.user_id in doc.get("sellerIds", [])
    ):
        raise NotFound("no such order")
    return doc
