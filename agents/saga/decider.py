"""The order orchestrator: applies each ``order-saga`` message to its order's saga once.

One message at a time per order (the topic is keyed by order id). A message
already applied is a no-op, except that the most recent one re-runs its
recorded plan: its effects may not all have happened before a crash. Lookups
(products, emails) happen before the state is written, so a transient failure
retries the whole message with nothing recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import orjson

from agents.effects import Effects
from agents.replies import record_expired, reply
from agents.saga import steps
from agents.saga.plan import SOURCE, Plan, carry_out
from agents.saga.state import TERMINAL, State, new_state, product_ids, seller_ids
from agents.saga.steps import Deadlines
from stores.product_lookup import ProductLookup
from streams.envelope import Envelope, format_time, utcnow
from streams.events.orders import OrderPlaced
from streams.events.saga import (
    OrderCancelRequested,
    OrderRequested,
    PaymentCaptured,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    StepTimedOut,
    StockRejected,
    StockReleased,
    StockReserved,
)

log = logging.getLogger(__name__)
Step = Callable[[Plan, Envelope], Awaitable[None]]
Listener = Callable[[State], None]


class OrderSaga:
    """Decides every saga message against the table and carries the decision out."""

    def __init__(
        self, table: MutableMapping[str, Any], effects: Effects, deadlines: Deadlines,
        *, on_commit: Listener | None = None,
    ) -> None:
        self._table = table
        self._effects = effects
        self._deadlines = deadlines
        self._on_commit = on_commit
        self._steps: dict[str, Step] = {
            "order.cancel_requested": self._cancel,
            "saga.stock_reserved": self._reserved,
            "saga.stock_rejected": self._rejected,
            "saga.stock_released": self._released,
            "saga.payment_captured": self._captured,
            "saga.payment_failed": self._payment_failed,
            "saga.payment_refunded": self._refunded,
            "saga.refund_failed": self._refund_failed,
            "saga.step_timed_out": self._timed_out,
        }

    async def handle(self, raw: bytes, *, now: datetime | None = None) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        now = now or utcnow()
        order_id = str(envelope.data.get("orderId", ""))
        stored = self._table.get(order_id)
        state: State | None = None if stored is None else orjson.loads(orjson.dumps(stored))
        if state is not None and envelope.id in state["applied"]:
            last = state["last"]
            if last is not None and last["messageId"] == envelope.id:
                await carry_out(self._effects, state, last)
                return "repeated"
            return "duplicate"
        if envelope.type == "order.requested":
            return await self._requested(envelope, state, now)
        step = self._steps.get(envelope.type)
        if step is None:
            log.warning("order saga ignores %s", envelope.type)
            return "ignored"
        if state is None:
            return await self._unknown(envelope, now)
        plan = Plan(state, envelope, now)
        before = orjson.dumps(state)
        await step(plan, envelope)
        if not plan.events and not plan.replies and orjson.dumps(plan.state) == before:
            return "stale"
        await self._commit(plan)
        return str(plan.state["status"])

    async def _commit(self, plan: Plan) -> None:
        state = plan.state
        state["applied"].append(plan.cause.id)
        state["version"] += 1
        state["updatedAt"] = format_time(plan.now)
        state["last"] = plan.record()
        # The decision is stored before any effect runs (see module docstring).
        self._table[plan.order_id] = state
        if self._on_commit is not None:
            self._on_commit(state)
        await carry_out(self._effects, state, state["last"])

    async def _requested(self, envelope: Envelope, state: State | None, now: datetime) -> str:
        command = envelope.payload(OrderRequested)
        if state is not None:
            # The same Idempotency-Key again (a retry after a 503, or a concurrent twin).
            plan = Plan(state, envelope, now)
            plan.answer(reply_to=command.reply_to, outcome="accepted")
            await self._commit(plan)
            return "replayed"
        if now > command.deadline:
            # The gateway already answered 503; the client's retry will create the order.
            await record_expired(self._effects, envelope, deadline=command.deadline, now=now,
                                 source=SOURCE)
            return "expired"
        plan = Plan(new_state(command, now=now), envelope, now)
        plan.send("orders", OrderPlaced(
            order_id=command.order_id, buyer_id=command.buyer_id, items=command.items,
            total=command.total, currency=command.currency, placed_at=now,
        ), key=command.order_id, name="placed", push=True)
        steps.reserve_all(plan, self._deadlines)
        plan.answer(reply_to=command.reply_to, outcome="accepted")
        await self._commit(plan)
        return "pending"

    async def _unknown(self, envelope: Envelope, now: datetime) -> str:
        if envelope.type == "order.cancel_requested":
            command = envelope.payload(OrderCancelRequested)
            await reply(self._effects, envelope, reply_to=command.reply_to, source=SOURCE,
                        outcome="rejected", code="NOT_FOUND", detail="no such order")
        else:
            log.warning("%s for unknown order %s", envelope.type, envelope.data.get("orderId"))
        return "unknown"

    async def _cancel(self, plan: Plan, envelope: Envelope) -> None:
        command = envelope.payload(OrderCancelRequested)
        state = plan.state
        if state["status"] in TERMINAL:
            plan.answer(reply_to=command.reply_to, outcome="rejected",
                        code="ORDER_NOT_CANCELLABLE",
                        detail=f"the order is already {state['status']}")
            return
        if state["phase"] is None:
            if plan.now > command.deadline:
                await record_expired(self._effects, envelope, deadline=command.deadline,
                                     now=plan.now, source=SOURCE)
                return
            state["cancel"] = {"reason": command.reason, "by": command.requested_by}
            self._start_cancel(plan, command.reason)
        plan.answer(reply_to=command.reply_to, outcome="accepted")

    def _start_cancel(self, plan: Plan, reason: str) -> None:
        state = plan.state
        if state["status"] == "pending" or (
            state["status"] == "stock_reserved" and state["payment"]["status"] == "none"
        ):
            steps.release_held(plan, "order cancelled")
            state["deadline"] = None
            plan.move("cancelled", reason)
        elif state["status"] == "stock_reserved":
            # The charge is in flight: its outcome decides between cancelled and refunded.
            state["phase"] = "cancelling"
        else:  # paid, delivered or completed: money was taken
            state["phase"] = "refunding"
            steps.refund(plan, self._deadlines, reason)

    async def _reserved(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(StockReserved)
        state = plan.state
        current = state["reservations"].get(result.product_id)
        if current is None or current == "reserved":
            return
        if state["status"] != "pending":
            # Reserved after the saga gave up (timeout, rejection, cancel): give it back.
            steps.send_release(plan, result.product_id, "order no longer needs it")
            return
        state["reservations"][result.product_id] = "reserved"
        if all(state["reservations"][pid] == "reserved" for pid in product_ids(state)):
            plan.move("stock_reserved")
            steps.charge(plan, self._deadlines)

    async def _rejected(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(StockRejected)
        state = plan.state
        if state["reservations"].get(result.product_id) != "requested":
            return
        state["reservations"][result.product_id] = "rejected"
        if state["status"] == "pending":
            steps.release_held(plan, "order rejected")
            state["deadline"] = None
            plan.move("rejected", f"{result.reason.replace('_', ' ')}: {result.product_id}")

    async def _released(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(StockReleased)
        if result.product_id in plan.state["reservations"]:
            plan.state["reservations"][result.product_id] = "released"

    async def _captured(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(PaymentCaptured)
        state = plan.state
        if state["payment"]["status"] not in ("requested", "timed_out", "failed"):
            return
        state["payment"].update(status="captured", provider=result.provider,
                                reference=result.reference, paymentId=result.payment_id)
        if state["status"] != "stock_reserved":
            # Captured after the saga gave up on the charge: the money goes back.
            steps.refund(plan, self._deadlines, "payment captured after the order failed")
            state["deadline"] = None  # nothing awaits it; a lost refund needs an operator
            return
        plan.move("paid")
        if state["phase"] == "cancelling":
            state["phase"] = "refunding"
            steps.refund(plan, self._deadlines, state["cancel"]["reason"])
            return
        products = await self._effects.repo(ProductLookup).many(product_ids(state))
        emails = await self._effects.users.emails([state["buyerId"], *seller_ids(state)])
        steps.deliver(plan, products)
        plan.move("delivered")
        steps.notify(plan, emails)
        state["deadline"] = None
        plan.move("completed")

    async def _payment_failed(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(PaymentFailed)
        state = plan.state
        if state["payment"]["status"] != "requested" or state["status"] != "stock_reserved":
            return
        state["payment"]["status"] = "failed"
        steps.release_held(plan, "payment failed")
        state["deadline"] = None
        if state["phase"] == "cancelling":
            state["phase"] = None
            plan.move("cancelled", state["cancel"]["reason"])
        else:
            plan.move("payment_failed", f"{result.code}: {result.reason}")

    async def _refunded(self, plan: Plan, envelope: Envelope) -> None:
        envelope.payload(PaymentRefunded)
        state = plan.state
        if state["payment"]["status"] == "refunded":
            return
        state["payment"]["status"] = "refunded"
        state["deadline"] = None
        if state["phase"] == "refunding":
            state["phase"] = None
            steps.release_held(plan, "order refunded")
            steps.revoke(plan, state["cancel"]["by"])
            plan.move("refunded", state["cancel"]["reason"])

    async def _refund_failed(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(RefundFailed)
        log.error("order %s: refund failed, an operator must act: %s",
                  plan.order_id, result.reason)
        plan.state["payment"]["status"] = "refund_failed"
        plan.state["deadline"] = None

    async def _timed_out(self, plan: Plan, envelope: Envelope) -> None:
        signal = envelope.payload(StepTimedOut)
        state = plan.state
        armed = state["deadline"]
        if armed is None or armed["step"] != signal.step or armed["at"] != format_time(
            signal.deadline
        ):
            return  # the step answered in time, or an older deadline: nothing to do
        state["deadline"] = None
        if signal.step == "reserve" and state["status"] == "pending":
            steps.release_held(plan, "inventory did not answer in time")
            plan.move("rejected", "inventory did not answer in time")
        elif signal.step == "charge" and state["status"] == "stock_reserved":
            state["payment"]["status"] = "timed_out"
            steps.release_held(plan, "payment did not answer in time")
            cancelling, state["phase"] = state["phase"] == "cancelling", None
            if cancelling:
                plan.move("cancelled", state["cancel"]["reason"])
            else:
                plan.move("payment_failed", "the payment provider did not answer in time")
        elif signal.step == "refund" and state["phase"] == "refunding":
            if int(state.get("refundAttempts", 0)) < steps.MAX_REFUND_ATTEMPTS:
                steps.refund(plan, self._deadlines, state["cancel"]["reason"])
            else:
                log.error("order %s: no refund answer after %d attempts; an operator must act",
                          plan.order_id, state["refundAttempts"])
                state["payment"]["status"] = "refund_failed"

