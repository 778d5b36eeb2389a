"""Forgetting ended orders: the saga's entry and its reservations go once the retention passed.

An order *has ended* when nothing more can happen to it on its own: its status is an end
(``completed`` included), no compensation is under way, no deadline is armed and no refund
is pending or failed (a refund refused for good waits for an operator, so it is kept). Its
retention (``Settings.saga_retention``) runs from its last change (``updatedAt``): any
message that changes the order starts it again.

Expiry runs through the inbox, in order with the order's other messages, in two steps,
each a ``saga.step_timed_out`` with step ``expire`` from :class:`RetentionWatch`:

1. *retire*: the saga sends ``inventory.forget_requested`` for every line and marks the
   entry ``retired``, recorded like any plan (``last``), so a redelivery sends the same
   commands again. A retired entry takes no more messages.
2. *delete*: the entry is deleted; the table's changelog gets a tombstone, so compaction
   and every restore drop the order too.

Why nothing can still refer to an order when it goes: every command the saga sent for it
was sent at or before its last change, so by then each is older than the retention; the
inventory ignores a reserve or release that old for which it holds no record
(``agents.inventory.decider``), and a message for an order the saga no longer holds is
logged and answered as for an unknown order (docs/reliability.md).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from agents.runtime.effects import Effects
from agents.saga.plan import SOURCE
from agents.saga.recovery import REFUNDING
from agents.saga.state import ENDS, State
from streams.envelope import derived_id, format_time, new_event, utcnow
from streams.events.saga import StepTimedOut

log = logging.getLogger(__name__)
# Expiry is days away: the table is read whole this rarely (after a restart or a rebalance
# the first tick reads it), and only entries due within two rescans are held in memory.
RESCAN_SECONDS = 300.0
HORIZON_SECONDS = 2 * RESCAN_SECONDS
# Signals sent per tick at most: a backlog (a worker down for a day) drains over ticks.
BATCH = 100
# A signal not yet applied is sent again after this long (e.g. lost in a rebalance).
RESIGNAL_SECONDS = 30.0


def has_ended(state: State) -> bool:
    """Whether nothing more can happen to the order unless someone asks (see module doc)."""
    return (state["status"] in ENDS and state["phase"] is None and state["deadline"] is None
            and state["payment"]["status"] not in REFUNDING)


def expires_at(state: Any, retention: float) -> datetime | None:
    """When the entry's next expiry step is due; None while the order has not ended."""
    if not isinstance(state, dict):
        return None
    if "retired" in state:
        return datetime.fromisoformat(state["retired"])
    if not has_ended(state):
        return None
    return datetime.fromisoformat(state["updatedAt"]) + timedelta(seconds=retention)


class RetentionWatch:
    """A timer's queue of ended orders due to expire on this worker, soonest first."""

    def __init__(self, table: Mapping[str, Any], effects: Effects, retention: float) -> None:
        self._table = table
        self._effects = effects
        self._retention = retention
        # (when to look, order id): an entry whose time is not the order's latest in
        # ``_queued`` is stale, and the table has the last word before a signal.
        self._due: list[tuple[float, str]] = []
        self._queued: dict[str, float] = {}
        self._rescanned = -RESCAN_SECONDS

    def note(self, state: State) -> None:
        """Queue the order if the state the agent just stored is due within the horizon."""
        self._queue(state["orderId"], expires_at(state, self._retention), utcnow())

    def rescan(self, now: datetime) -> None:
        """Rebuild the queue from this worker's table partitions."""
        self._due, self._queued = [], {}
        for order_id, state in self._table.items():
            self._queue(order_id, expires_at(state, self._retention), now)

    def _queue(self, order_id: str, at: datetime | None, now: datetime) -> None:
        if at is None or (at - now).total_seconds() > HORIZON_SECONDS:
            self._queued.pop(order_id, None)
        else:
            self._look(order_id, at.timestamp())

    def _look(self, order_id: str, when: float) -> None:
        self._queued[order_id] = when
        heapq.heappush(self._due, (when, order_id))

    async def tick(self, now: datetime | None = None) -> int:
        """Signal the due expiry steps, ``BATCH`` at most; returns how many were sent."""
        now = now or utcnow()
        clock = time.monotonic()
        if clock - self._rescanned >= RESCAN_SECONDS:
            self._rescanned = clock
            try:
                self.rescan(now)
            except Exception:  # e.g. a table still recovering; the next rescan catches up
                log.warning("saga retention rescan failed", exc_info=True)
        sent = 0
        while self._due and self._due[0][0] <= now.timestamp() and sent < BATCH:
            when, order_id = heapq.heappop(self._due)
            if self._queued.get(order_id) != when:
                continue  # superseded by a later note
            state = self._table.get(order_id)
            at = expires_at(state, self._retention)
            if at is None or at > now:
                self._queue(order_id, at, now)  # changed since: queued again if still due
                continue
            step = "delete" if "retired" in (state or {}) else "retire"
            signal = StepTimedOut.model_validate(
                {"orderId": order_id, "step": "expire", "deadline": at})
            await self._effects.emit("order-saga", new_event(
                signal, key=order_id, source=SOURCE,
                event_id=derived_id(order_id, "timeout", "expire", step, format_time(at)),
                occurred_at=at,
            ))
            sent += 1
            # Looked at again later: applied by then, the table says so and it is dropped.
            self._look(order_id, now.timestamp() + RESIGNAL_SECONDS)
        return sent
