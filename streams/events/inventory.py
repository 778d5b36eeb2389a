"""Inventory: stock commands (internal, keyed by product id) and public stock events."""

from __future__ import annotations

from typing import Literal

from streams.commands import STOCK
from streams.registry import Command, Payload, Timestamp, event

COMMANDS = "inventory-commands"


@event("inventory.reserve_requested", topic=COMMANDS, key="productId",
       summary="Reserve stock for one order line; idempotent per reservationId.")
class ReserveRequested(Payload):
    """Saga → inventory."""

    reservation_id: str  # f"{orderId}:{productId}"
    order_id: str
    product_id: str
    quantity: int


@event("inventory.release_requested", topic=COMMANDS, key="productId",
       summary="Give a reservation's stock back (compensation); idempotent per reservationId.")
class ReleaseRequested(Payload):
    """Saga → inventory."""

    reservation_id: str
    order_id: str
    product_id: str
    reason: str


@event("inventory.forget_requested", topic=COMMANDS, key="productId",
       summary="Delete a reservation's record: its order ended longer ago than "
               "MERCATO_SAGA_RETENTION; idempotent per reservationId.")
class ForgetRequested(Payload):
    """Saga → inventory; the stock is left as it is (a sold unit stays sold)."""

    reservation_id: str
    order_id: str
    product_id: str


@event("inventory.adjust_requested", topic=COMMANDS, key="productId",
       summary="A seller or admin changes a product's stock (PATCH /v1/products/{id}/stock).",
       answers=STOCK)
class AdjustRequested(Command):
    """Gateway → inventory (request/reply); the stock never goes negative."""

    product_id: str
    quantity_change: int
    requested_by: str
    reply_to: str
    # Set by the gateway (request/reply): a late copy is dropped, since the client got 503
    # and may retry. None (the catalog's initial stock) never expires.
    deadline: Timestamp | None = None


@event("inventory.stock_changed", topic="inventory", key="productId",
       summary="A product's available stock changed; currentStock is the new level.")
class StockChanged(Payload):
    """Public: drives product:{id} pushes and the catalog's stock projection."""

    product_id: str
    current_stock: int
    change: int
    reason: Literal["adjusted", "reserved", "released", "created"]
    order_id: str | None = None
    # The product's stock changes numbered in the order they were decided. A change is sent
    # again, at a later offset, when its command comes again (a saga repeating its plan), so
    # the offset does not order the levels; this does. Absent from changes decided before it.
    sequence: int | None = None
