"""Shared value types of commerce events: money and order lines."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

from streams.registry import Payload

# Money is a decimal string on the wire ("12.50") plus an ISO 4217 code, never a float.
Amount = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    Field(description="Decimal amount as a string, e.g. \"12.50\"."),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]


class OrderLine(Payload):
    """One product in an order, priced when the order was placed."""

    product_id: str
    seller_id: str
    quantity: int = Field(gt=0)
    unit_price: Amount
    currency: Currency
