"""Payments: charges and refunds through the provider, each settled exactly once per key.

Commands arrive keyed by order id, so one agent handles an order's charge and
refunds in order, and the table below holds every settled outcome:

    order id -> {"charges": {idempotencyKey: record}, "refunds": {idempotencyKey: record}}

A record (outcome, provider reference, failure code, attempts, amount, time) is
stored once the provider call sequence settles it; a redelivered command finds it
and re-sends the same results (ids derived from the key, times from the record)
without calling the provider again. A crash between the call and the record is
covered by the provider's own idempotency: the retry uses the same key.

Not settled, hence not stored: a charge refused by the open circuit (no call was
made: ``saga.payment_deferred``, the saga sends it again) and a refund that met
provider failures or the open circuit (``saga.refund_failed`` with ``retryable``:
the saga sends it again with backoff until it succeeds). Their events' ids derive
from the command's own id, so a redelivery of that command repeats them, while
the saga's next attempt (a new command, same key) gets a fresh answer.

Provider outcomes (declines, timeouts, errors, an open circuit) are business
results sent to the saga; only unexpected errors reach ``guarded``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from agents.payments.announcer import Announcer
from agents.payments.calls import ResilientCalls
from agents.payments.circuit import CircuitBreaker
from agents.payments.provider import PaymentProvider
from agents.runtime.effects import Effects
from streams.envelope import Envelope, format_time, utcnow
from streams.events.payments import ChargeRequested, RefundRequested

log = logging.getLogger(__name__)
Record = dict[str, Any]
# Failures that say nothing about the refund itself: sending it again may work.
TRANSIENT = frozenset({"provider_timeout", "provider_error", "circuit_open"})


class PaymentsDecider:
    """Settles one charge or refund command and announces its outcome."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        effects: Effects,
        provider: PaymentProvider,
        calls: ResilientCalls,
    ) -> None:
        self._table = table
        self._provider = provider
        self._calls = calls
        self._announce = Announcer(effects)

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding the provider (per process)."""
        return self._calls.breaker

    async def handle(self, raw: bytes, *, now: datetime | None = None) -> str:
        """Process one record; returns the outcome (for logs and tests)."""
        envelope = Envelope.decode(raw)
        if envelope.type == "payment.charge_requested":
            return await self._charge(envelope, envelope.payload(ChargeRequested), now)
        if envelope.type == "payment.refund_requested":
            return await self._refund(envelope, envelope.payload(RefundRequested), now)
        log.warning("payments agent ignores %s", envelope.type)
        return "ignored"

    def _state(self, order_id: str) -> dict[str, dict[str, Record]]:
        stored = self._table.get(order_id) or {}
        return {kind: dict(stored.get(kind, {})) for kind in ("charges", "refunds")}

    def _store(self, order_id: str, kind: str, key: str, record: Record) -> None:
        state = self._state(order_id)
        state[kind][key] = record
        self._table[order_id] = state

    async def _charge(
        self, envelope: Envelope, command: ChargeRequested, now: datetime | None
    ) -> str:
        charges = self._state(command.order_id)["charges"]
        record = charges.get(command.idempotency_key) or _captured(charges, command.payment_id)
        if record is None:
            attempted = await self._calls.call(
                lambda: self._provider.charge(
                    command.idempotency_key, command.amount, command.currency,
                    command.payment_method,
                ),
                key=command.idempotency_key, what=f"charge {command.payment_id}",
            )
            if attempted.code == "circuit_open":
                await self._announce.deferred(envelope, command, attempted, now or utcnow())
                return "deferred"
            record = {
                "paymentId": command.payment_id,
                "provider": self._provider.name,
                "amount": format(command.amount, "f"),
                "currency": command.currency,
                "attempts": attempted.attempts,
                "at": format_time(now or utcnow()),
            }
            result = attempted.result
            if result is not None and result.status == "captured":
                record.update(outcome="captured", reference=result.reference)
            elif result is not None:
                record.update(outcome="failed", code="declined", reason=result.reason)
            else:
                record.update(outcome="failed", code=attempted.code, reason=attempted.reason)
            self._store(command.order_id, "charges", command.idempotency_key, record)
        await self._announce.charge(envelope, command, record)
        return str(record["outcome"])

    async def _refund(
        self, envelope: Envelope, command: RefundRequested, now: datetime | None
    ) -> str:
        state = self._state(command.order_id)
        record = state["refunds"].get(command.idempotency_key)
        if record is None:
            record = {
                "paymentId": command.payment_id,
                "refundId": command.refund_id,
                "amount": format(command.amount, "f"),
                "currency": command.currency,
                "attempts": 0,
                "at": format_time(now or utcnow()),
            }
            charge = _captured(state["charges"], command.payment_id)
            refusal = _refusal(state, command, charge)
            if charge is None or refusal:
                record.update(outcome="failed", reason=refusal)
            else:
                record.update(await self._call_refund(command, charge))
            if record.get("code") in TRANSIENT:
                await self._announce.refund_unsettled(envelope, command, record)
                return "retryable"
            self._store(command.order_id, "refunds", command.idempotency_key, record)
        await self._announce.refund(envelope, command, record)
        return str(record["outcome"])

    async def _call_refund(self, command: RefundRequested, charge: Record) -> Record:
        attempted = await self._calls.call(
            lambda: self._provider.refund(
                command.idempotency_key, charge["reference"], command.amount, command.currency
            ),
            key=command.idempotency_key, what=f"refund {command.refund_id}",
        )
        result = attempted.result
        if result is not None and result.status == "refunded":
            return {"outcome": "refunded", "reference": result.reference,
                    "attempts": attempted.attempts}
        reason = result.reason if result is not None else attempted.reason
        return {"outcome": "failed", "reason": reason, "code": attempted.code or "declined",
                "attempts": attempted.attempts}


def _captured(charges: dict[str, Record], payment_id: str) -> Record | None:
    """The captured charge of ``payment_id``: never charge one payment twice, whatever the key."""
    for record in charges.values():
        if record["paymentId"] == payment_id and record["outcome"] == "captured":
            return record
    return None


def _refusal(
    state: dict[str, dict[str, Record]], command: RefundRequested, charge: Record | None
) -> str:
    """Why this refund cannot go to the provider at all ('' when it can)."""
    if charge is None:
        return f"payment {command.payment_id} has no captured charge to refund"
    if command.currency != charge["currency"]:
        return f"the refund's currency {command.currency} is not the charge's {charge['currency']}"
    refunded = sum(
        (Decimal(r["amount"]) for r in state["refunds"].values()
         if r["paymentId"] == command.payment_id and r["outcome"] == "refunded"),
        Decimal(0),
    )
    if command.amount <= 0 or refunded + command.amount > Decimal(charge["amount"]):
        return f"a refund of {command.amount} exceeds what is left of the charge"
    return ""
