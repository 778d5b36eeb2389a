"""The in-app text of every message template, filled from the message's parameters.

A template names only the parameters it shows: delivery secrets (a reset token)
are in ``params`` for the e-mail but never in a title or body. A parameter the
producer did not send renders as an empty string rather than failing the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.events.notifications import Template

# (title, body) per template, as ``str.format`` patterns over the message's params.
IN_APP: dict[Template, tuple[str, str]] = {
    "password_reset": (
        "Password reset requested",
        "Someone asked to reset your password. If it was not you, ignore the email; "
        "your password stays the same.",
    ),
    "order_completed": (
        "Your order is complete",
        "Payment received and your purchase is ready to download.",
    ),
    "order_received": (
        "You made a sale",
        "A buyer completed an order that includes your products.",
    ),
    "payment_failed": (
        "Your payment did not go through",
        "We could not take the payment for order {orderId}: {reason}. Nothing was charged "
        "and you can order again.",
    ),
    "order_refunded": (
        "Your order was refunded",
        "Order {orderId} was refunded: {total} {currency} is on its way back to you.",
    ),
    "file_shared": (
        "A file was shared with you",
        "You can now read \u201c{fileName}\u201d.",
    ),
    "review_received": (
        "New review of your product",
        "\u201c{productName}\u201d was rated {rating} out of 5.",
    ),
    "stock_low": (
        "Stock is running low",
        "\u201c{productName}\u201d has {currentStock} left (your alert threshold is "
        "{threshold}).",
    ),
    "webhook_disabled": (
        "A webhook was disabled",
        "Deliveries to {url} failed {failures} times in a row, so the endpoint was disabled. "
        "Fix it, then enable it again (PATCH /v1/webhooks/{webhookId}).",
    ),
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: Template, params: Mapping[str, Any]) -> tuple[str, str]:
    """The title and body of ``template`` with ``params`` filled in."""
    title, body = IN_APP[template]
    values = _Blank(params)
    return title.format_map(values), body.format_map(values)
