"""The deadline watch: turns passed step deadlines into ``saga.step_timed_out`` messages.

Faust runs timers on every worker, and a table iterates only this worker's
partitions, so each worker watches exactly the sagas it owns. The timeout is
sent to ``order-saga`` rather than applied here, so the agent handles it in
order with the order's other messages. Its id is derived from the deadline:
repeated signals for one deadline are applied once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agents.runtime.effects import Effects
from agents.saga.plan import SOURCE
from agents.saga.state import State
from streams.envelope import derived_id, new_event, utcnow
from streams.events.saga import StepTimedOut

log = logging.getLogger(__name__)
# Rebuild the index from the table now and then: it is empty after a restart and
# changes with rebalances; between rescans the agent keeps it current.
RESCAN_SECONDS = 10.0
# A signal not yet applied is sent again after this long (e.g. lost in a rebalance).
RESIGNAL_SECONDS = 5.0


class DeadlineWatch:
    """An index of armed deadlines (order id -> step, at) and the timer that fires them."""

    def __init__(self, table: Mapping[str, Any], effects: Effects) -> None:
        self._table = table
        self._effects = effects
        self._armed: dict[str, tuple[str, str]] = {}
        self._signalled: dict[tuple[str, str], float] = {}
        self._rescanned = -RESCAN_SECONDS

    def note(self, state: State) -> None:
        """Keep the index current after the agent stored ``state``."""
        deadline = state["deadline"]
        if deadline is None:
            self._armed.pop(state["orderId"], None)
        else:
            self._armed[state["orderId"]] = (deadline["step"], deadline["at"])

    def rescan(self) -> None:
        """Rebuild the index from this worker's table partitions."""
        armed: dict[str, tuple[str, str]] = {}
        for order_id, state in self._table.items():
            deadline = state.get("deadline") if isinstance(state, dict) else None
            if deadline is not None:
                armed[order_id] = (deadline["step"], deadline["at"])
        self._armed = armed

    async def tick(self, now: datetime | None = None) -> int:
        """Signal every passed deadline; returns how many signals were sent."""
        clock = time.monotonic()
        if clock - self._rescanned >= RESCAN_SECONDS:
            self._rescanned = clock
            try:
                self.rescan()
            except Exception:  # e.g. a table still recovering; the next rescan catches up
                log.warning("saga deadline rescan failed", exc_info=True)
        now = now or utcnow()
        sent = 0
        for order_id, (step, at) in list(self._armed.items()):
            when = datetime.fromisoformat(at)
            key = (order_id, at)
            if when > now or clock - self._signalled.get(key, -RESIGNAL_SECONDS) < RESIGNAL_SECONDS:
                continue
            self._signalled[key] = clock
            signal = StepTimedOut.model_validate(
                {"orderId": order_id, "step": step, "deadline": when}
            )
            await self._effects.emit("order-saga", new_event(
                signal, key=order_id, source=SOURCE,
                event_id=derived_id(order_id, "timeout", step, at), occurred_at=when,
            ))
            sent += 1
        self._forget_old(clock)
        return sent

    def _forget_old(self, clock: float) -> None:
        for key, at in list(self._signalled.items()):
            if clock - at > 10 * RESIGNAL_SECONDS:
                del self._signalled[key]
