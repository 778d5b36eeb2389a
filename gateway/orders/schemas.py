"""Bodies and answers of /v1/orders (camelCase on the wire)."""

from __future__ import annotations

from pydantic import Field

from gateway.http.responses import Out, PaginationOut
from gateway.http.validation import Body


class OrderItemBody(Body):
    """One requested line."""

    product_id: str = Field(min_length=1, max_length=128)
    quantity: int = Field(ge=1, le=1000)


class OrderBody(Body):
    """POST /v1/orders."""

    items: list[OrderItemBody] = Field(min_length=1, max_length=50)
    payment_method: str = Field(min_length=1, max_length=64)


class OrderAcceptedOut(Out):
    """202 of POST /v1/orders and of a cancel."""

    order_id: str
    status: str


class OrderItemOut(Out):
    """One priced line."""

    product_id: str
    seller_id: str
    quantity: int
    unit_price: str
    currency: str


class PaymentOut(Out):
    """What is known of the order's payment."""

    status: str
    provider: str | None = None
    reference: str | None = None


class HistoryOut(Out):
    """One transition."""

    status: str
    at: str
    reason: str | None = None


class OrderOut(Out):
    """An order."""

    order_id: str
    buyer_id: str
    status: str
    items: list[OrderItemOut]
    total: str
    currency: str
    payment: PaymentOut
    history: list[HistoryOut]
    created_at: str
    updated_at: str


class OrderPageOut(Out):
    """A page of orders."""

    data: list[OrderOut]
    pagination: PaginationOut
