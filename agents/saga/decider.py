"""The order orchestrator: applies each ``order-saga`` message to its order's saga once.

One message at a time per order (the topic is keyed by order id). A message
already applied is a no-op, except that the most recent one re-runs its
recorded plan: its effects may not all have happened before a crash. Lookups
(products) happen before the state is written, so a transient failure
retries the whole message with nothing recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import orjson

from agents.runtime.effects import Effects
from agents.runtime.replies import record_expired, reply
from agents.saga import recovery, retention, steps
from agents.saga.plan import SOURCE, Plan, carry_out
from agents.saga.state import TERMINAL, State, new_state, product_ids
from agents.saga.steps import Deadlines
from stores.product_lookup import ProductLookup
from streams.envelope import Envelope, format_time, utcnow
from streams.events.orders import OrderPlaced
from streams.events.saga import (
    OrderCancelRequested,
    OrderRequested,
    OrderRetryRequested,
    PaymentCaptured,
    PaymentDeferred,
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
            "order.retry_requested": self._retry,
            "saga.stock_reserved": self._reserved,
            "saga.stock_rejected": self._rejected,
            "saga.stock_released": self._released,
            "saga.payment_captured": self._captured,
            "saga.payment_failed": self._payment_failed,
            "saga.payment_deferred": self._deferred,
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
        if envelope.type == "saga.step_timed_out" and envelope.data.get("step") == "expire":
            return await self._expire(envelope, state, now)
        if state is not None and "retired" in state:
            # Its reservations are being forgotten and it is deleted next: it takes nothing more.
            return await self._unknown(envelope, now)
        if envelope.type == "order.requested":
            return await self._requested(envelope, state, now)
        step = self._steps.get(envelope.type)
        if step is None:
            log.warning("order saga ignores %s", envelope.type)
            return "ignored"
        if state is None:
            return await self._unknown(envelope, now)
        plan = Plan(state, envelope, now)
        before, status = orjson.dumps(state), state["status"]
        await step(plan, envelope)
        steps.notify_end(plan, status)
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

    async def _expire(self, envelope: Envelope, state: State | None, now: datetime) -> str:
        """One step of forgetting an ended order (``agents.saga.retention``)."""
        if state is None:
            return "gone"  # forgotten already: a repeated signal
        order_id = str(state["orderId"])
        if "retired" in state:
            # The retire step's commands are on the broker: this key's messages are handled
            # one at a time, each only once the previous one's effects were acknowledged.
            del self._table[order_id]
            log.info("order %s forgotten (%s, last changed %s)", order_id, state["status"],
                     state["updatedAt"])
            return "forgotten"
        due = retention.expires_at(state, self._deadlines.retention)
        if due is None or due > now:
            return "stale"  # changed since the signal was sent
        plan = Plan(state, envelope, now)
        steps.forget_all(plan)
        # Recorded like any plan, so a redelivery repeats it; not a change of the order
        # (version and updatedAt stay: the read model keeps the order as it ended).
        state["retired"] = format_time(now)
        state["applied"].append(envelope.id)
        state["last"] = plan.record()
        self._table[order_id] = state
        if self._on_commit is not None:
            self._on_commit(state)
        await carry_out(self._effects, state, state["last"])
        return "retired"

    async def _unknown(self, envelope: Envelope, now: datetime) -> str:
        if envelope.type == "order.cancel_requested":
            # The gateway asks only about orders in the read model, which the saga wrote:
            # an order it no longer holds ended longer ago than the retention.
            cancel = envelope.payload(OrderCancelRequested)
            await reply(self._effects, envelope, reply_to=cancel.reply_to, source=SOURCE,
                        outcome="rejected", code="ORDER_NOT_CANCELLABLE",
                        detail="the order ended longer ago than it can be cancelled or "
                               "refunded")
            return "unknown"
        if envelope.type == "order.retry_requested":
            command = envelope.payload(OrderRetryRequested)
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
        elif state["phase"] == "refunding":
            # Cancelled again while the refund is under way: send it again now (same key,
            # so at most one refund happens) rather than answer 202 and do nothing.
            steps.refund(plan, self._deadlines)
        plan.answer(reply_to=command.reply_to, outcome="accepted")

    async def _retry(self, plan: Plan, envelope: Envelope) -> None:
        command = envelope.payload(OrderRetryRequested)
        why = recovery.stuck(plan.state, plan.now)
        if why is None:
            plan.answer(reply_to=command.reply_to, outcome="rejected", code="ORDER_NOT_STUCK",
                        detail="the order is not stuck: it is past no deadline and no refund "
                               "of it failed")
            return
        log.warning("order %s: %s; re-driven by %s", plan.order_id, why, command.requested_by)
        fired = recovery.redrive(plan, self._deadlines)
        if fired is not None:
            self._apply_deadline(plan, fired)
        plan.answer(reply_to=command.reply_to, outcome="accepted")

    def _start_cancel(self, plan: Plan, reason: str) -> None:
        state = plan.state
        if state["status"] == "pending" or (
            # Deferred: the provider took nothing and no charge is in flight.
            state["status"] == "stock_reserved"
            and state["payment"]["status"] in ("none", "deferred")
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
        if state["payment"]["status"] not in ("requested", "deferred", "timed_out", "failed"):
            return
        state["payment"].update(status="captured", provider=result.provider,
                                reference=result.reference, paymentId=result.payment_id)
        if state["status"] != "stock_reserved":
            # Captured after the saga gave up on the charge: the money goes back.
            # The refund's deadline stays armed: it is re-sent until it succeeds.
            steps.refund(plan, self._deadlines, "payment captured after the order failed")
            return
        plan.move("paid")
        if state["phase"] == "cancelling":
            state["phase"] = "refunding"
            steps.refund(plan, self._deadlines, state["cancel"]["reason"])
            return
        products = await self._effects.repo(ProductLookup).many(product_ids(state))
        steps.deliver(plan, products)
        plan.move("delivered")
        steps.notify(plan)
        state["deadline"] = None
        plan.move("completed")

    async def _payment_failed(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(PaymentFailed)
        state = plan.state
        if state["payment"]["status"] not in ("requested", "deferred") or (
            state["status"] != "stock_reserved"
        ):
            return
        state["payment"]["status"] = "failed"
        steps.release_held(plan, "payment failed")
        state["deadline"] = None
        if state["phase"] == "cancelling":
            state["phase"] = None
            plan.move("cancelled", state["cancel"]["reason"])
        else:
            plan.move("payment_failed", f"{result.code}: {result.reason}")

    async def _deferred(self, plan: Plan, envelope: Envelope) -> None:
        result = envelope.payload(PaymentDeferred)
        state = plan.state
        if state["payment"]["status"] != "requested" or state["status"] != "stock_reserved":
            return
        if state["phase"] == "cancelling":
            # Cancelled while waiting for the provider: nothing was charged, nothing is in flight.
            state["payment"]["status"] = "deferred"
            state["phase"] = None
            steps.release_held(plan, "order cancelled")
            state["deadline"] = None
            plan.move("cancelled", state["cancel"]["reason"])
            return
        steps.defer_charge(plan, self._deadlines, result.retry_after)
        log.info("order %s: %s; the charge waits (%s)", plan.order_id, result.reason,
                 plan.state["deadline"]["step"])

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
        state = plan.state
        if state["payment"]["status"] != "refund_requested":
            return  # refunded already, or an answer to an attempt superseded by a later one
        if result.retryable:
            delay = steps.refund_later(plan, self._deadlines)
            log.warning("order %s: refund failed (%s), sent again in %.1fs",
                        plan.order_id, result.reason, delay)
            return
        log.error("order %s: refund refused for good, an operator must act "
                  "(GET /v1/admin/orders?stuck=true): %s", plan.order_id, result.reason)
        state["payment"]["status"] = "refund_failed"
        state["deadline"] = None

    async def _timed_out(self, plan: Plan, envelope: Envelope) -> None:
        signal = envelope.payload(StepTimedOut)
        armed = plan.state["deadline"]
        if armed is None or armed["step"] != signal.step or armed["at"] != format_time(
            signal.deadline
        ):
            return  # the step answered in time, or an older deadline: nothing to do
        self._apply_deadline(plan, signal.step)

    def _apply_deadline(self, plan: Plan, step: str) -> None:
        """The armed deadline of ``step`` has passed: give up, or send again what is awaited."""
        state = plan.state
        state["deadline"] = None
        payment = state["payment"]["status"]
        if step == "reserve" and state["status"] == "pending":
            steps.release_held(plan, "inventory did not answer in time")
            plan.move("rejected", "inventory did not answer in time")
        elif step == "charge" and state["status"] == "stock_reserved":
            state["payment"]["status"] = "timed_out"
            steps.release_held(plan, "payment did not answer in time")
            cancelling, state["phase"] = state["phase"] == "cancelling", None
            if cancelling:
                plan.move("cancelled", state["cancel"]["reason"])
            elif payment == "deferred":
                plan.move("payment_failed", "the payment provider was unavailable (circuit "
                                            "open) until the charge deadline")
            else:
                plan.move("payment_failed", "the payment provider did not answer in time")
        elif step == "charge_retry" and state["status"] == "stock_reserved" and (
            payment == "deferred"
        ):
            steps.charge(plan, self._deadlines)
        elif step == "refund" and payment == "refund_requested":
            delay = steps.refund_later(plan, self._deadlines)
            log.warning("order %s: no refund answer in time, sent again in %.1fs",
                        plan.order_id, delay)
        elif step == "refund_retry" and payment == "refund_failed":
            steps.refund(plan, self._deadlines)

