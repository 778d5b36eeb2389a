"""The order saga's inbox (internal topic ``order-saga``, keyed by order id).

Everything that moves an order forward arrives here: the client's commands (from
the gateway) and the results of each step (from the inventory and payments
agents, and the orchestrator's own deadline timer). One topic keyed by order id
means one agent instance sees every message of an order, in order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streams.commands import ORDERS
from streams.events.money import Amount, Currency, OrderLine
from streams.registry import Command, Payload, Timestamp, event

TOPIC = "order-saga"


@event("order.requested", topic=TOPIC, key="orderId",
       summary="A buyer asked to place an order (from the gateway, with an Idempotency-Key).",
       answers=ORDERS)
class OrderRequested(Command):
    """Client command: create the order and start the saga."""

    order_id: str
    buyer_id: str
    items: list[OrderLine] = Field(min_length=1)
    total: Amount
    currency: Currency
    payment_method: str
    idempotency_key: str
    reply_to: str
    deadline: Timestamp


@event("order.cancel_requested", topic=TOPIC, key="orderId",
       summary="A buyer (or admin) asked to cancel an order.",
       answers=ORDERS)
class OrderCancelRequested(Command):
    """Client command: cancel before delivery; refunds when already paid."""

    order_id: str
    requested_by: str
    reason: str = "cancelled by buyer"
    reply_to: str
    deadline: Timestamp


@event("order.retry_requested", topic=TOPIC, key="orderId",
       summary="An admin asked to re-drive a stuck order's current step (POST .../retry).",
       answers=ORDERS)
class OrderRetryRequested(Command):
    """Operator command: re-send what the saga waits for (same idempotency keys)."""

    order_id: str
    requested_by: str
    reply_to: str
    deadline: Timestamp


@event("saga.stock_reserved", topic=TOPIC, key="orderId",
       summary="The inventory agent reserved one line's stock for the order.")
class StockReserved(Payload):
    """Step result from inventory."""

    order_id: str
    product_id: str
    reservation_id: str
    quantity: int


@event("saga.stock_rejected", topic=TOPIC, key="orderId",
       summary="The inventory agent could not reserve one line (out of stock, archived, unknown).")
class StockRejected(Payload):
    """Step result from inventory."""

    order_id: str
    product_id: str
    reservation_id: str
    reason: Literal["out_of_stock", "unknown_product", "archived"]
    available: int = 0


@event("saga.stock_released", topic=TOPIC, key="orderId",
       summary="The inventory agent released a reservation (compensation); idempotent.")
class StockReleased(Payload):
    """Step result from inventory."""

    order_id: str
    product_id: str
    reservation_id: str
    quantity: int


@event("saga.payment_captured", topic=TOPIC, key="orderId",
       summary="The payments agent captured the charge.")
class PaymentCaptured(Payload):
    """Step result from payments."""

    order_id: str
    payment_id: str
    provider: str
    reference: str
    amount: Amount
    currency: Currency


@event("saga.payment_failed", topic=TOPIC, key="orderId",
       summary="The charge failed for good (declined, or provider failures after retries; "
               "circuit_open is no longer sent: see saga.payment_deferred).")
class PaymentFailed(Payload):
    """Step result from payments."""

    order_id: str
    payment_id: str
    code: Literal["declined", "provider_timeout", "provider_error", "circuit_open"]
    reason: str


@event("saga.payment_deferred", topic=TOPIC, key="orderId",
       summary="The charge was not attempted: the provider's circuit is open. Nothing was "
               "charged; the saga sends the charge again until its deadline.")
class PaymentDeferred(Payload):
    """Step result from payments."""

    order_id: str
    payment_id: str
    reason: str
    # Seconds until the payments agent's circuit breaker lets a trial call through.
    retry_after: float = 0.0


@event("saga.payment_refunded", topic=TOPIC, key="orderId",
       summary="The payments agent refunded the charge (compensation).")
class PaymentRefunded(Payload):
    """Step result from payments."""

    order_id: str
    payment_id: str
    refund_id: str
    amount: Amount
    currency: Currency


@event("saga.refund_failed", topic=TOPIC, key="orderId",
       summary="A refund failed: retryable (provider down, circuit open; the saga sends it "
               "again with backoff) or for good (the order needs an operator).")
class RefundFailed(Payload):
    """Step result from payments."""

    order_id: str
    payment_id: str
    reason: str
    code: Literal["declined", "provider_timeout", "provider_error", "circuit_open"] | None = None
    retryable: bool = False


@event("saga.step_timed_out", topic=TOPIC, key="orderId",
       summary="A saga step did not answer before its deadline (from the orchestrator's timer).")
class StepTimedOut(Payload):
    """Deadline signal: the orchestrator fails the saga and compensates."""

    order_id: str
    # *_retry: the time to send again a charge or refund the provider could not take.
    # expire: the order ended longer ago than the retention (agents.saga.retention).
    step: Literal[
        "reserve", "charge", "deliver", "refund", "charge_retry", "refund_retry", "expire"
    ]
    deadline: Timestamp
