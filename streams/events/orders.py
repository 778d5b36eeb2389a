"""Public order events (topic ``orders``, keyed by order id)."""

from __future__ import annotations

from typing import Literal

from streams.events.money import Amount, Currency, OrderLine
from streams.registry import Payload, Timestamp, event

OrderStatus = Literal[
    "pending", "stock_reserved", "paid", "delivered", "completed",
    "rejected", "payment_failed", "cancelled", "refunded",
]


@event("order.placed", topic="orders", key="orderId", summary="An order exists (status pending).")
class OrderPlaced(Payload):
    """The order as placed: lines priced at placement time."""

    order_id: str
    buyer_id: str
    items: list[OrderLine]
    total: Amount
    currency: Currency
    placed_at: Timestamp


@event("order.status_changed", topic="orders", key="orderId",
       summary="An order moved to a new status; every saga transition is one of these.")
class OrderStatusChanged(Payload):
    """One transition of the order state machine."""

    order_id: str
    buyer_id: str
    seller_ids: list[str]
    previous: OrderStatus
    status: OrderStatus
    reason: str | None = None
    at: Timestamp
