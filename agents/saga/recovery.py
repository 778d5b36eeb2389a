"""Stuck orders and what an operator's retry does to them (``order.retry_requested``).

An order is *stuck* when its saga waits past an armed deadline (the timer should have
fired: a worker was down, a signal was lost) or when a refund of it failed (a retry is
scheduled, or the provider refused it for good). ``stores.orders`` lists the same orders
from the read model (``deadline.at`` passed, or ``payment.status == "refund_failed"``).

A retry re-drives the current step through the saga's normal paths: a failed or overdue
refund is sent again now (same idempotency key: at most one refund happens); any other
overdue deadline is applied as the timer would have (a deferred charge is sent again, a
charge or reservation past its deadline fails the order and releases its stock).
"""

from __future__ import annotations

from datetime import datetime

from agents.saga import steps
from agents.saga.plan import Plan
from agents.saga.state import State

REFUNDING = frozenset({"refund_requested", "refund_failed"})


def stuck(state: State, now: datetime) -> str | None:
    """Why the order is stuck, or None when it is not."""
    if state["payment"]["status"] == "refund_failed":
        return "a refund of it failed"
    deadline = state["deadline"]
    if deadline is not None and datetime.fromisoformat(deadline["at"]) <= now:
        return f"its {deadline['step']} deadline has passed"
    return None


def redrive(plan: Plan, deadlines: steps.Deadlines) -> str | None:
    """Re-send a stuck refund now; else the step whose passed deadline the saga must apply."""
    if plan.state["payment"]["status"] in REFUNDING:
        steps.refund(plan, deadlines)
        return None
    deadline = plan.state["deadline"]
    return None if deadline is None else str(deadline["step"])
