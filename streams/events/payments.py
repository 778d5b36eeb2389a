"""Payments: charge/refund commands (internal, keyed by order id) and public outcomes."""

from __future__ import annotations

from streams.events.money import Amount, Currency
from streams.registry import Payload, event

COMMANDS = "payment-commands"


@event("payment.charge_requested", topic=COMMANDS, key="orderId",
       summary="Charge an order once; idempotencyKey makes a redelivery charge nothing twice.")
class ChargeRequested(Payload):
    """Saga → payments."""

    order_id: str
    payment_id: str
    idempotency_key: str
    amount: Amount
    currency: Currency
    payment_method: str


@event("payment.refund_requested", topic=COMMANDS, key="orderId",
       summary="Refund a captured charge once (compensation or cancel after payment).")
class RefundRequested(Payload):
    """Saga → payments."""

    order_id: str
    payment_id: str
    refund_id: str
    idempotency_key: str
    amount: Amount
    currency: Currency
    reason: str


@event("payment.captured", topic="payments", key="orderId", summary="A charge succeeded.")
class PaymentCapturedPublic(Payload):
    """Public outcome (no payment method details)."""

    order_id: str
    payment_id: str
    provider: str
    reference: str
    amount: Amount
    currency: Currency


@event("payment.failed", topic="payments", key="orderId", summary="A charge failed for good.")
class PaymentFailedPublic(Payload):
    """Public outcome."""

    order_id: str
    payment_id: str
    code: str
    reason: str
    attempts: int


@event("payment.refunded", topic="payments", key="orderId", summary="A charge was refunded.")
class PaymentRefundedPublic(Payload):
    """Public outcome."""

    order_id: str
    payment_id: str
    refund_id: str
    amount: Amount
    currency: Currency
