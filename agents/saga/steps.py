"""The saga's moves: reserve, charge, deliver, notify, and their compensations.

Each function changes the state held by a ``Plan`` and queues the commands and
events that go with it. Every queued envelope has an id derived from the order
id and the step, so re-running a step re-sends the very same command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta

from agents.runtime.messages import message_id
from agents.saga.plan import Plan
from agents.saga.state import HELD, product_ids, seller_ids, set_deadline, total
from config import Settings
from stores.product_lookup import ProductView
from streams.envelope import derived_id, format_time
from streams.events.files import FilePermissionGranted, FilePermissionRevoked
from streams.events.inventory import ForgetRequested, ReleaseRequested, ReserveRequested
from streams.events.notifications import MessageRequested, Template
from streams.events.payments import ChargeRequested, RefundRequested

# The ends an order's buyer is told about, besides completion (see notify_end).
ENDINGS: dict[str, Template] = {"payment_failed": "payment_failed", "refunded": "order_refunded"}


@dataclasses.dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds each awaited step may take before the saga gives up on it, and retry pacing."""

    reserve: float = 10.0
    charge: float = 30.0
    refund: float = 30.0
    # A deferred charge (open circuit) is sent again this often, until the charge deadline.
    charge_retry: float = 1.0
    # A failed refund is sent again after refund_backoff * 2^(failures - 1), capped.
    refund_backoff: float = 1.0
    refund_max_backoff: float = 300.0
    # An ended order is forgotten this long after its last change (agents.saga.retention).
    retention: float = 14 * 24 * 60 * 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        """The deadlines configured in ``settings``."""
        return cls(settings.saga_reserve_timeout, settings.saga_charge_timeout,
                   settings.saga_refund_timeout, settings.saga_charge_retry,
                   settings.saga_refund_backoff, settings.saga_refund_max_backoff,
                   settings.saga_retention)

    def refund_delay(self, failures: int) -> float:
        """The pause before re-sending a refund that failed ``failures`` times in a row."""
        return float(min(self.refund_backoff * 2 ** (max(failures, 1) - 1),
                         self.refund_max_backoff))


def reservation_id(order_id: str, product_id: str) -> str:
    """One reservation per order line; the inventory agent dedupes by it."""
    return f"{order_id}:{product_id}"


def reserve_all(plan: Plan, deadlines: Deadlines) -> None:
    """Ask inventory to reserve every line (step ``reserve``)."""
    for item in plan.state["items"]:
        pid = item["productId"]
        plan.send("inventory-commands", ReserveRequested(
            reservation_id=reservation_id(plan.order_id, pid), order_id=plan.order_id,
            product_id=pid, quantity=item["quantity"],
        ), key=pid, name=f"reserve:{pid}")
    set_deadline(plan.state, "reserve", plan.now, deadlines.reserve)


def release_held(plan: Plan, reason: str) -> None:
    """Give back every reservation still held, last line first (compensation in reverse)."""
    reservations = plan.state["reservations"]
    for pid in reversed(product_ids(plan.state)):
        # "requested" too: a release queued behind its reserve on the product's partition
        # undoes a reservation whose answer has not reached us yet.
        if reservations[pid] in HELD:
            send_release(plan, pid, reason)


def send_release(plan: Plan, product_id: str, reason: str) -> None:
    """(Re-)send the release of one reservation; same id every time."""
    plan.state["reservations"][product_id] = "releasing"
    plan.send("inventory-commands", ReleaseRequested(
        reservation_id=reservation_id(plan.order_id, product_id), order_id=plan.order_id,
        product_id=product_id, reason=reason,
    ), key=product_id, name=f"release:{product_id}")


def forget_all(plan: Plan) -> None:
    """Tell the inventory to drop every line's reservation record (the order expires)."""
    for pid in product_ids(plan.state):
        plan.send("inventory-commands", ForgetRequested(
            reservation_id=reservation_id(plan.order_id, pid), order_id=plan.order_id,
            product_id=pid,
        ), key=pid, name=f"forget:{pid}")


def charge(plan: Plan, deadlines: Deadlines) -> None:
    """Ask payments to charge the order once (step ``charge``); also each re-send.

    Every send uses the same idempotency key; a re-send (after ``payment_deferred``)
    needs a new event id and keeps the first send's deadline: the charge as a whole
    has one.
    """
    state = plan.state
    payment_id = derived_id(plan.order_id, "payment")
    attempt = int(state.get("chargeAttempts", 0)) + 1
    state["chargeAttempts"] = attempt
    state["payment"].update(status="requested", paymentId=payment_id)
    plan.send("payment-commands", ChargeRequested(
        order_id=plan.order_id, payment_id=payment_id,
        idempotency_key=f"{plan.order_id}:charge", amount=total(state),
        currency=state["currency"], payment_method=state["paymentMethod"],
    ), key=plan.order_id, name="charge" if attempt == 1 else f"charge:{attempt}")
    if attempt == 1:
        set_deadline(state, "charge", plan.now, deadlines.charge)
        state["chargeBy"] = state["deadline"]["at"]
    else:
        state["deadline"] = {"step": "charge", "at": state["chargeBy"]}


def defer_charge(plan: Plan, deadlines: Deadlines, retry_after: float) -> None:
    """The provider cannot take the charge yet: send it again later, within its deadline."""
    state = plan.state
    state["payment"]["status"] = "deferred"
    # A saga from before chargeBy existed: its armed charge deadline is the one.
    state.setdefault("chargeBy", (state["deadline"] or {}).get("at", format_time(plan.now)))
    retry = plan.now + timedelta(seconds=max(retry_after, deadlines.charge_retry))
    if retry < datetime.fromisoformat(state["chargeBy"]):
        state["deadline"] = {"step": "charge_retry", "at": format_time(retry)}
    else:  # no time left for another try: the charge deadline decides
        state["deadline"] = {"step": "charge", "at": state["chargeBy"]}


def refund(plan: Plan, deadlines: Deadlines, reason: str | None = None) -> None:
    """Ask payments to refund the captured charge (step ``refund``); also each re-send.

    ``reason`` on the first send; a re-send (after a failure, a timeout, a second cancel or
    an operator's retry) repeats it, with the same idempotency key.
    """
    state = plan.state
    if reason is not None:
        state["refundReason"] = reason
    attempt = int(state.get("refundAttempts", 0)) + 1
    state["refundAttempts"] = attempt
    state["payment"]["status"] = "refund_requested"
    plan.send("payment-commands", RefundRequested(
        order_id=plan.order_id, payment_id=state["payment"]["paymentId"],
        refund_id=derived_id(plan.order_id, "refund"),
        idempotency_key=f"{plan.order_id}:refund", amount=total(state),
        currency=state["currency"], reason=state.get("refundReason") or "refund",
    # A retry needs a new event id (receivers dedupe ids); the idempotency key keeps it once.
    ), key=plan.order_id, name=f"refund:{attempt}")
    set_deadline(state, "refund", plan.now, deadlines.refund)


def refund_later(plan: Plan, deadlines: Deadlines) -> float:
    """The last refund attempt failed (or went unanswered): send it again after a backoff."""
    state = plan.state
    failures = int(state.get("refundFailures", 0)) + 1
    state["refundFailures"] = failures
    state["payment"]["status"] = "refund_failed"
    delay = deadlines.refund_delay(failures)
    set_deadline(state, "refund_retry", plan.now, delay)
    return delay


def deliver(plan: Plan, products: Mapping[str, ProductView]) -> None:
    """Grant the buyer read access to every file of every product bought."""
    state = plan.state
    files: dict[str, list[str]] = {}
    for item in state["items"]:
        product = products.get(item["productId"])
        files[item["productId"]] = list(product.file_ids) if product else []
        for file_id in files[item["productId"]]:
            plan.send("files", FilePermissionGranted(
                file_id=file_id, user_id=state["buyerId"], source="purchase",
                granted_by=item["sellerId"], granted_at=plan.now, order_id=plan.order_id,
            ), key=file_id, name=f"grant:{file_id}")
    state["files"] = files


def revoke(plan: Plan, revoked_by: str) -> None:
    """Take back the purchase grants of a refunded order."""
    for file_ids in plan.state.get("files", {}).values():
        for file_id in file_ids:
            plan.send("files", FilePermissionRevoked(
                file_id=file_id, user_id=plan.state["buyerId"], revoked_by=revoked_by,
                revoked_at=plan.now,
            ), key=file_id, name=f"revoke:{file_id}")


def notify(plan: Plan) -> None:
    """Tell the buyer their order is complete and each seller that they sold something.

    The addresses are the accounts', looked up by the notifications agent (as for every
    message an agent asks for), so the saga reads no user on its way to ``completed``.
    """
    state = plan.state
    params = {"orderId": plan.order_id, "total": state["total"], "currency": state["currency"]}
    recipients: list[tuple[str, Template]] = [(state["buyerId"], "order_completed")]
    recipients += [(seller, "order_received") for seller in seller_ids(state)]
    for user_id, template in recipients:
        _message(plan, user_id, template, params)


def _message(plan: Plan, user_id: str, template: Template, params: dict[str, str]) -> None:
    # Derived from the order: an order tells each user each thing at most once.
    plan.send("outbox", MessageRequested(
        message_id=message_id(plan.order_id, user_id, template), user_id=user_id,
        template=template, params=params,
    ), key=user_id, name=f"message:{user_id}:{template}")


def notify_end(plan: Plan, previous: str) -> None:
    """Tell the buyer their order has just failed its payment or been refunded.

    An order reaches each end once, and the message id derives from the order and the
    template, so no redelivery or re-driven step tells the buyer twice.
    """
    state = plan.state
    status = state["status"]
    template = ENDINGS.get(status)
    if template is None or status == previous:
        return
    params = {"orderId": plan.order_id, "total": state["total"], "currency": state["currency"]}
    if status == "payment_failed":
        params["reason"] = state["history"][-1].get("reason", "")
    _message(plan, state["buyerId"], template, params)
