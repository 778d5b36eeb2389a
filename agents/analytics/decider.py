"""The second analytics stage: applies a record's facts to its scope's windows once.

A record of ``analytics-facts`` carries the facts of one scope from a batch of source
events (or is the timer's tick). All of a record's writes go to one table partition (so
one changelog partition, in order) and are made by one :class:`~agents.analytics.windows.
Change`, which writes each touched key once and the partition's meta last (with the
record's offset): after a crash the table holds a prefix of the record's writes, and the
redelivered record completes it (see ``agents.analytics.windows``). Emitting a window is
idempotent (same ids, the store keeps the highest revision); after a restart or an
assignment the first tick of a partition emits its closed windows again, in case the crash
lost an emission.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from agents.analytics import metrics
from agents.analytics.facts import epoch_ms
from agents.analytics.windows import (
    Change,
    Memory,
    Window,
    closed_windows,
    emitted,
    latest,
    name_key,
    pending,
    start_of,
)
from agents.runtime.effects import Effects
from stores.analytics import AnalyticsRepository
from stores.suggestions import SuggestionRepository
from streams.envelope import Envelope, derived_id, format_time, new_event
from streams.events.analytics import AnalyticsTick, WindowClosed

log = logging.getLogger(__name__)
SOURCE = "agents.analytics"


class AnalyticsDecider:
    """Handles the facts and ticks of the partitions this worker owns."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects, *, grace: float) -> None:
        self._table = table
        self._effects = effects
        self._grace_ms = int(grace * 1000)
        self._memory: dict[int, Memory] = {}
        # Scopes this process applied facts to, with their partition (the snapshot
        # publisher's work list).
        self.live: dict[str, int] = {}
        # Scopes a record changed since the publisher last built them.
        self.touched: set[str] = set()
        self._reemitted: set[int] = set()

    def revoked(self, partitions: Iterable[int]) -> None:
        """Partitions moved away: what is remembered of them may be stale when they return."""
        for partition in partitions:
            self._memory.pop(partition, None)
            self._reemitted.discard(partition)

    def _change(self, partition: int, offset: int, source: str = "") -> Change:
        memory = self._memory.get(partition)
        if memory is None:
            memory = self._memory[partition] = Memory(self._table, partition)
        return Change(self._table, partition, offset, self._grace_ms, memory, source)

    async def handle(self, raw: bytes, *, partition: int, offset: int) -> str:
        """Process one record of ``analytics-facts``; returns what happened."""
        envelope = Envelope.decode(raw)
        if envelope.type == "analytics.facts":
            # As JSON, not validated into models (see ``metrics.Fact``): a malformed record
            # fails on a missing key or a wrong type, which dead-letters it.
            source, facts = str(envelope.data["source"]), envelope.data["facts"]
            if not isinstance(facts, list):
                raise TypeError("analytics.facts: facts is not a list")
            change = self._change(partition, offset, source)
            if change.done_already():
                return "duplicate record"
            return self._facts(change, envelope.key, facts)
        if envelope.type != "analytics.tick":
            log.warning("analytics agent ignores %s", envelope.type)
            return "ignored"
        change = self._change(partition, offset)
        if change.done_already():
            # Applied, but perhaps not emitted (a failure, or a crash): emit what is owed.
            return await self._emit_pending(partition)
        return await self._tick(change, epoch_ms(envelope.payload(AnalyticsTick).at))

    def _facts(self, change: Change, scope: str, facts: list[metrics.Fact]) -> str:
        counts = dict.fromkeys(("applied", "duplicate", "late", "named"), 0)
        for fact in facts:
            at, fact_id = int(fact["atMs"]), str(fact["id"])
            if fact["kind"] == "product":
                self._name(change, scope, fact)
                counts["named"] += 1
                continue
            verdict = change.verdict(fact_id, at)
            counts[verdict] += 1
            if verdict == "late":
                log.warning(
                    "analytics: late event %s for %s at %s, %d ms behind the watermark; "
                    "counted in lateEvents, not applied", fact_id, scope,
                    format_time(datetime.fromtimestamp(at / 1000, UTC)), change.watermark - at)
                change.count_late(scope, fact.get("sellerId"), fact_id)
                continue
            # A duplicate's time was applied already, or by this very record before a
            # crash (whose meta write it did not reach): the clock is the same either way.
            change.advance_clock(at)
            if verdict == "duplicate":
                continue
            self._apply(change, scope, at, fact_id, fact)
        self._sweep(change)
        change.commit()  # what it closed or revised is emitted by the next tick
        self.live[scope] = change.partition
        self.touched.add(scope)
        return ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "empty"

    def _apply(self, change: Change, scope: str, at: int, fact_id: str,
               fact: metrics.Fact) -> None:
        day = start_of(at, "day")
        viewer, user = fact.get("viewer"), fact.get("userId")
        fresh: list[str] = []
        if fact["kind"] == "view" and viewer is not None and change.distinct(
                f"d|{change.partition}|{day}|{scope}|viewers|{viewer}"):
            fresh.append("viewers")
        if user and change.distinct(f"d|{change.partition}|{day}|{scope}|activeUsers|{user}"):
            fresh.append("activeUsers")

        def add(m: metrics.Metrics, size: str) -> None:
            metrics.apply(m, fact)
            if size == "day":
                for counter in fresh:
                    m[counter] += 1

        change.update(scope, fact.get("sellerId"), at, add)
        if viewer is not None:
            change.visited(scope, str(viewer), at)
        change.applied(fact_id, at)

    def _name(self, change: Change, scope: str, fact: metrics.Fact) -> None:
        # Product names for the top products; last write wins (names are not windowed).
        # One key per product: a scope's map of every name would grow with the catalogue.
        product, name = fact.get("productId"), fact.get("name")
        if product is None or name is None:
            return
        key = name_key(scope, str(product))
        if self._table.get(key) != name:
            self._table[key] = name

    def _sweep(self, change: Change) -> None:
        days = [int(w["start"]) for w in change.sweep() if w["size"] == "day"]
        if not days:
            return
        # A day is forgotten once a day per scope: its distinct marks go with it. They are
        # not indexed (one bucket write per new viewer would cost more than this scan).
        last = max(days)
        prefix = f"d|{change.partition}|"

        def gone(key: str) -> bool:
            return key.startswith(prefix) and int(key.split("|", 3)[2]) <= last

        for key in list(self._table.keys()):
            if gone(key):
                change.delete(key)
        memory = self._memory[change.partition]
        memory.marks = {key for key in memory.marks if not gone(key)}

    async def _tick(self, change: Change, now_ms: int) -> str:
        change.advance_wall(now_ms)
        self._sweep(change)
        change.commit()
        return await self._emit_pending(change.partition)

    async def _emit_pending(self, partition: int) -> str:
        """Emit the windows the partition's records closed or revised since the last tick.

        Records only collect them (``pending``), so a window revised by many records in a
        second, as a backlog does, is emitted once a tick with its latest revision. The
        first tick in this process also emits every closed window, in case a crash lost
        an emission."""
        owed = pending(self._table, partition)
        first = partition not in self._reemitted
        if first:
            owed = latest([*closed_windows(self._table, partition), *owed])
        await self._emit_all(owed)
        emitted(self._table, partition)
        if first:  # only once it worked
            self._reemitted.add(partition)
        return f"tick: {len(owed)} emitted"

    async def _emit_all(self, windows: list[Window]) -> None:
        repo = self._effects.repo(AnalyticsRepository)
        suggestions = self._effects.repo(SuggestionRepository)
        for window in windows:
            await repo.upsert_window(window)
            if window["size"] == "hour" and window["sellerId"] is None:
                # The marketplace's hourly figures rank search suggestions (stores.suggestions).
                await suggestions.record_popularity(
                    int(window["start"]), window["metrics"]["products"]
                )
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
