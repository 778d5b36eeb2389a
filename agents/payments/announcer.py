"""The events the payments agent sends for a settled record, identical on every repeat.

Saga results go to ``order-saga`` and public outcomes to ``payments``, both keyed
by order id. Ids of settled outcomes derive from the command's idempotency key,
times come from the record; ids of unsettled ones (deferred charges, retryable
refund failures) from the command's own id. Public events never carry the
payment method.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from agents.payments.calls import Attempted
from agents.runtime import caused
from agents.runtime.effects import Effects
from streams.envelope import Envelope, derived_id
from streams.events.payments import (
    ChargeRequested,
    PaymentCapturedPublic,
    PaymentFailedPublic,
    PaymentRefundedPublic,
    RefundRequested,
)
from streams.events.saga import (
    PaymentCaptured,
    PaymentDeferred,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
)

SOURCE = "agents.payments"
Result = (
    PaymentCaptured | PaymentCapturedPublic | PaymentFailed | PaymentFailedPublic
    | PaymentRefunded | PaymentRefundedPublic | RefundFailed | PaymentDeferred
)


class Announcer:
    """Sends the saga result and the public outcome of a charge or refund record."""

    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def charge(
        self, envelope: Envelope, command: ChargeRequested, record: dict[str, Any]
    ) -> None:
        """``payment_captured`` or ``payment_failed``, to the saga and in public."""
        amount, at = Decimal(record["amount"]), datetime.fromisoformat(record["at"])
        key, order_id = command.idempotency_key, command.order_id
        saga: PaymentCaptured | PaymentFailed
        public: PaymentCapturedPublic | PaymentFailedPublic
        if record["outcome"] == "captured":
            common: dict[str, Any] = {
                "order_id": order_id,
                "payment_id": record["paymentId"],
                "provider": record["provider"],
                "reference": record["reference"],
                "amount": amount,
                "currency": record["currency"],
            }
            saga, public = PaymentCaptured(**common), PaymentCapturedPublic(**common)
        else:
            failure: dict[str, Any] = {
                "order_id": order_id,
                "payment_id": record["paymentId"],
                "code": record["code"],
                "reason": record["reason"],
            }
            saga = PaymentFailed(**failure)
            public = PaymentFailedPublic(**failure, attempts=record["attempts"])
        await self._send(envelope, saga, derived_id("payment", key, "saga"), at)
        await self._send(envelope, public, derived_id("payment", key, "public"), at)

    async def deferred(
        self, envelope: Envelope, command: ChargeRequested, attempted: Attempted[Any],
        at: datetime,
    ) -> None:
        """``payment_deferred`` to the saga only: nothing happened that the public should see."""
        deferred = PaymentDeferred(
            order_id=command.order_id, payment_id=command.payment_id, reason=attempted.reason,
            retry_after=attempted.retry_after,
        )
        await self._send(envelope, deferred,
                         derived_id(envelope.id, "deferred"), at)

    async def refund_unsettled(
        self, envelope: Envelope, command: RefundRequested, record: dict[str, Any]
    ) -> None:
        """A retryable ``refund_failed`` (provider failures or an open circuit), saga only."""
        failed = RefundFailed(
            order_id=command.order_id, payment_id=record["paymentId"], reason=record["reason"],
            code=record["code"], retryable=True,
        )
        await self._send(envelope, failed, derived_id(envelope.id, "refund"),
                         datetime.fromisoformat(record["at"]))

    async def refund(
        self, envelope: Envelope, command: RefundRequested, record: dict[str, Any]
    ) -> None:
        """``payment_refunded`` (saga and public) or ``refund_failed`` (saga only)."""
        at = datetime.fromisoformat(record["at"])
        key, order_id = command.idempotency_key, command.order_id
        if record["outcome"] != "refunded":
            failed = RefundFailed(
                order_id=order_id, payment_id=record["paymentId"], reason=record["reason"],
                code=record.get("code"),
            )
            # Named after the command, not the key: a refusal is stored and re-announced to
            # every later attempt (a second cancel, an operator's retry), and each must get an
            # answer the saga has not seen, or it would wait for one, time out and send again
            # forever. A redelivered command still repeats its own answer's id.
            await self._send(envelope, failed, derived_id(envelope.id, "refund"),
                             at)
            return
        common: dict[str, Any] = {
            "order_id": order_id,
            "payment_id": record["paymentId"],
            "refund_id": record["refundId"],
            "amount": Decimal(record["amount"]),
            "currency": record["currency"],
        }
        saga_id, public_id = derived_id("refund", key, "saga"), derived_id("refund", key, "public")
        await self._send(envelope, PaymentRefunded(**common), saga_id, at)
        await self._send(envelope, PaymentRefundedPublic(**common), public_id, at)

    async def _send(
        self, envelope: Envelope, payload: Result, event_id: str, at: datetime
    ) -> None:
        """On the payload's registered topic (the saga's inbox or the public one)."""
        await caused.emit(
            self._effects, payload, cause=envelope, source=SOURCE, event_id=event_id, at=at
        )

