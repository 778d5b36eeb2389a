"""Dashboard snapshots: built from the windows, stored and pushed when they changed.

A timer (every ``analytics_snapshot_interval`` seconds, one a second by default) builds
the snapshot of each scope this worker keeps; one that says something new (its ``asOf``
aside) replaces the scope's snapshot in MongoDB (``GET /v1/analytics/dashboard``) and
is pushed as ``analytics.snapshot`` on ``dashboard`` or ``dashboard:{sellerId}``. So a
scope gets at most one push per interval, and none while nothing changes. The scopes
are read now and then from each owned partition's list in the table (after a restart
the in-memory list is empty); each
tick publishes only those whose partition this worker is assigned at that moment, so a
scope moved away by a rebalance is not published here again (its table rows are gone,
and an all-zero snapshot would replace its new owner's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure

from agents.analytics import snapshot
from agents.analytics.decider import AnalyticsDecider
from agents.analytics.facts import MARKETPLACE
from agents.analytics.windows import MINUTE_MS, name_key, scopes_key, start_of, visitors_key
from agents.runtime.effects import Effects
from stores.analytics import AnalyticsRepository
from streams.envelope import new_event, utcnow
from streams.events.analytics import DashboardSnapshot

log = logging.getLogger(__name__)
SOURCE = "agents.analytics"
RESCAN_SECONDS = 10.0
VISITOR_MINUTES = 5  # "visitors now": distinct viewers of the last five minutes
# MongoDB or the broker unreachable or too slow: a later tick can succeed.
OUTAGES = (ConnectionFailure, KafkaError)


def channel_of(scope: str) -> str:
    """The push channel of a scope."""
    return "dashboard" if scope == MARKETPLACE else "dashboard:" + scope.removeprefix("seller:")


class SnapshotPublisher:
    """Builds, stores and pushes the snapshots of the scopes this worker keeps."""

    def __init__(
        self, table: Mapping[str, Any], effects: Effects, decider: AnalyticsDecider, *,
        owned: Callable[[], Collection[int]],
    ) -> None:
        """``owned``: the ``analytics-facts`` partitions this worker is assigned now."""
        self._table = table
        self._owned = owned
        self._effects = effects
        self._decider = decider
        self._last: dict[str, dict[str, Any]] = {}
        self._built: dict[str, int] = {}  # scope -> the minute it was last built in
        self._rescanned = -RESCAN_SECONDS

    def build(self, scope: str, now: datetime) -> dict[str, Any]:
        """The snapshot of ``scope`` at ``now`` from this worker's table."""
        now_ms = int(now.timestamp() * 1000)
        seller = None if scope == MARKETPLACE else scope.removeprefix("seller:")
        current = start_of(now_ms, "minute")
        minutes = {}
        for start in range(current - 59 * MINUTE_MS, current + 1, MINUTE_MS):
            window = self._table.get(f"w|{scope}|minute|{start}")
            if window is not None:
                minutes[start] = window
        return snapshot.build(
            seller, now_ms=now_ms,
            day=self._table.get(f"w|{scope}|day|{start_of(now_ms, 'day')}"),
            minutes=minutes,
            visitors=[self._table.get(visitors_key(scope, start)) or []
                      for start in range(current - VISITOR_MINUTES * MINUTE_MS + MINUTE_MS,
                                         current + 1, MINUTE_MS)],
            name_of=lambda product: self._table.get(name_key(scope, product)),
        )

    def _rescan(self) -> None:
        found = {scope: partition for partition in self._owned()
                 for scope in self._table.get(scopes_key(partition)) or []}
        self._decider.live.clear()
        self._decider.live.update(found)

    async def tick(self, now: datetime | None = None) -> int:
        """Publish every scope whose snapshot changed; returns how many were published."""
        clock = time.monotonic()
        if clock - self._rescanned >= RESCAN_SECONDS:
            self._rescanned = clock
            try:
                self._rescan()
            except Exception:  # a table still recovering; the next rescan catches up
                log.warning("analytics snapshot rescan failed", exc_info=True)
        now = now or utcnow()
        owned = set(self._owned())
        live = self._decider.live
        for scope in [s for s, partition in live.items() if partition not in owned]:
            del live[scope]
            self._last.pop(scope, None)
            self._built.pop(scope, None)
        published = 0
        minute = start_of(int(now.timestamp() * 1000), "minute")
        touched, self._decider.touched = self._decider.touched, set()
        for scope in sorted(live):
            if live.get(scope) not in self._owned():  # revoked while we were publishing
                continue
            # A scope no record changed only needs building again when the minute turns
            # (its chart shifts, visitors leave): idle shops cost a build a minute, not 60.
            if scope not in touched and self._built.get(scope) == minute:
                continue
            self._built[scope] = minute
            built = self.build(scope, now)
            if snapshot.same(self._last.get(scope), built):
                continue
            try:
                await self._effects.repo(AnalyticsRepository).put_snapshot(scope, built)
                payload = DashboardSnapshot.model_validate(built)
                await self._effects.push(channel_of(scope), new_event(
                    payload, key=channel_of(scope), source=SOURCE, occurred_at=now))
            except OUTAGES as exc:
                # This runs on a Faust timer, and a timer that raises crashes the whole
                # worker (a MongoDB restart did). Skip the round instead; this scope and
                # every touched one not reached yet are built again on the next tick.
                log.warning("analytics snapshots not published: %r", exc)
                self._built.pop(scope, None)
                self._decider.touched |= touched
                return published
            self._last[scope] = built
            published += 1
        return published
