"""The second analytics stage: applies facts to their scope's windows once, closes windows.

Records of one partition of ``analytics-facts`` are applied one at a time, and all of
a record's writes go to one table (so one changelog partition, in order): after a crash
the table holds a prefix of the record's writes. Each window remembers the last fact it
applied (``lastFact``), and the fact's ``seen`` mark is written last, so a redelivered
fact is skipped where it was applied and applied where it was not. Emitting a window is
idempotent (same ids, the store keeps the highest revision); after a restart the first
tick of a partition emits its closed windows again, in case the crash lost an emission.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from agents.analytics import metrics
from agents.analytics.windows import PartitionWindows, Window, start_of
from agents.effects import Effects
from stores.analytics import AnalyticsRepository
from streams.envelope import Envelope, derived_id, new_event
from streams.events.analytics import AnalyticsFact, AnalyticsTick, WindowClosed

log = logging.getLogger(__name__)
SOURCE = "agents.analytics"
VISITOR_KEEP_MS = 5 * 60_000


def epoch_ms(moment: str | datetime) -> int:
    """Epoch milliseconds of an RFC 3339 time (or a datetime)."""
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return int(when.timestamp() * 1000)


class AnalyticsDecider:
    """Handles facts and ticks of the partitions this worker owns."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects, *, grace: float) -> None:
        self._table = table
        self._effects = effects
        self._grace_ms = int(grace * 1000)
        # Scopes this process applied facts to, with their partition (the snapshot
        # publisher's work list).
        self.live: dict[str, int] = {}
        self._reemitted: set[int] = set()

    def partition(self, partition: int) -> PartitionWindows:
        """The windows of one partition (the table is shared; keys name their partition)."""
        return PartitionWindows(
            self._table, self._table, partition=partition, grace_ms=self._grace_ms,
            seen_prefix="s|",
        )

    async def handle(self, raw: bytes, *, partition: int) -> str:
        """Process one record of ``analytics-facts``; returns what happened."""
        envelope = Envelope.decode(raw)
        windows = self.partition(partition)
        if envelope.type == "analytics.tick":
            tick = envelope.payload(AnalyticsTick)
            return await self._tick(windows, epoch_ms(tick.at))
        if envelope.type != "analytics.fact":
            log.warning("analytics agent ignores %s", envelope.type)
            return "ignored"
        fact = envelope.payload(AnalyticsFact)
        scope = envelope.key
        at = epoch_ms(envelope.occurred_at)
        if fact.kind == "product":
            if fact.product_id is not None and fact.name is not None:
                names = dict(self._table.get(f"n|{scope}") or {})
                if names.get(fact.product_id) != fact.name:
                    names[fact.product_id] = fact.name
                    self._table[f"n|{scope}"] = names
            return "named"
        verdict = windows.check(envelope.id, at)
        if verdict == "duplicate":
            return "duplicate"
        if verdict == "late":
            log.warning(
                "analytics: late event %s for %s at %s, %d ms behind the watermark; "
                "counted in lateEvents, not applied", envelope.id, scope, envelope.occurred_at,
                windows.watermark - at)
            revised = windows.update(scope, fact.seller_id, windows.clock, envelope.id,
                                     lambda m, size: m.__setitem__(
                                         "lateEvents", m["lateEvents"] + 1))
            windows.mark_late(envelope.id)
            await self._emit_all(revised)
            return "late"
        fresh = self._distinct(partition, scope, at, fact)

        def change(m: metrics.Metrics, size: str) -> None:
            metrics.apply(m, fact)
            if size == "day":
                for counter in fresh:
                    m[counter] += 1

        revised = windows.update(scope, fact.seller_id, at, envelope.id, change)
        self._mark_distinct(partition, scope, at, fact)
        if fact.viewer is not None:
            self._visit(scope, fact.viewer, at)
        windows.mark_seen(envelope.id, at)
        closed, forgotten = windows.advance(at)
        self._forget(partition, forgotten)
        self.live[scope] = partition
        await self._emit_all(revised + closed)
        return "revised" if revised else "applied"

    async def _tick(self, windows: PartitionWindows, now_ms: int) -> str:
        closed, forgotten = windows.advance(now_ms)
        self._forget(windows.partition, forgotten)
        if windows.partition not in self._reemitted:
            self._reemitted.add(windows.partition)
            closed = [*windows.closed_windows(), *closed]
        await self._emit_all(closed)
        return f"tick: {len(closed)} emitted"

    def _distinct_keys(self, partition: int, scope: str, at: int, fact: AnalyticsFact
                       ) -> dict[str, str]:
        day = start_of(at, "day")
        keys: dict[str, str] = {}
        if fact.kind == "view" and fact.viewer is not None:
            keys["viewers"] = f"d|{partition}|{day}|{scope}|viewers|{fact.viewer}"
        if fact.user_id:
            keys["activeUsers"] = f"d|{partition}|{day}|{scope}|activeUsers|{fact.user_id}"
        return keys

    def _distinct(self, partition: int, scope: str, at: int, fact: AnalyticsFact) -> list[str]:
        """The day's distinct counters this fact adds one to (not yet marked)."""
        return [counter for counter, key in self._distinct_keys(partition, scope, at, fact).items()
                if key not in self._table]

    def _mark_distinct(self, partition: int, scope: str, at: int, fact: AnalyticsFact) -> None:
        for key in self._distinct_keys(partition, scope, at, fact).values():
            if key not in self._table:
                self._table[key] = 1

    def _visit(self, scope: str, viewer: str, at: int) -> None:
        key = f"v|{scope}"
        visitors: dict[str, int] = dict(self._table.get(key) or {})
        if visitors.get(viewer, 0) >= at:
            return
        visitors[viewer] = at
        newest = max(visitors.values())
        self._table[key] = {v: t for v, t in visitors.items() if t > newest - VISITOR_KEEP_MS}

    def _forget(self, partition: int, forgotten: list[Window]) -> None:
        days = [int(w["start"]) for w in forgotten if w["size"] == "day"]
        if not days:
            return
        last = max(days)
        prefix = f"d|{partition}|"
        for key in list(self._table.keys()):
            if key.startswith(prefix) and int(key.split("|", 3)[2]) <= last:
                del self._table[key]

    async def _emit_all(self, windows: list[Window]) -> None:
        repo = self._effects.repo(AnalyticsRepository)
        for window in windows:
            await repo.upsert_window(window)
            for metric, value in metrics.metric_values(window["metrics"]).items():
                record = WindowClosed.model_validate({
                    "sellerId": window["sellerId"], "metric": metric, "size": window["size"],
                    "start": datetime.fromtimestamp(window["start"] / 1000, UTC),
                    "end": datetime.fromtimestamp(window["end"] / 1000, UTC),
                    "revision": window["revision"], "value": value,
                })
                key = f"{window['scope']}|{metric}|{window['size']}|{window['start']}"
                await self._effects.emit("analytics-windows", new_event(
                    record, key=key, source=SOURCE,
                    event_id=derived_id(key, str(window["revision"])),
                    occurred_at=record.end,
                ))
