"""Wiring of the two analytics stages on a Faust app: tables, agents and timers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
from faust.streams import current_event

from agents.analytics.decider import AnalyticsDecider
from agents.analytics.facts import Fact, FactMapper, by_scope, facts_record
from agents.analytics.publisher import SnapshotPublisher
from agents.runtime.declare import (
    Agents,
    as_current,
    batched_agent,
    guarded_agent,
    source_table,
    source_topic,
)
from agents.runtime.effects import Effects, commit, held
from agents.runtime.heartbeat import processing
from agents.runtime.resilience import guarded
from config import Settings
from streams.admission import admit
from streams.envelope import derived_id, format_time, new_event, utcnow
from streams.events.analytics import FACTS, AnalyticsTick
from streams.topics import partitions as topic_partitions

log = logging.getLogger(__name__)
SOURCE = "agents.analytics"
SOURCES = ("orders", "payments", "users", "files", "products", "analytics")
ORDERS_TABLE = "analytics-orders"
WINDOWS_TABLE = "analytics-windows"
# Source records per batch of the facts stage: at most this many facts per scope record
# (~250 KB with order lines, well under Kafka's 1 MB default); and how long a batch waits
# to fill (a fraction of the dashboard's one-second snapshot interval).
FACT_BATCH = 500
FACT_BATCH_SECONDS = 0.05


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare both stages on ``app``, facts first; returns their agents by name."""
    return {
        "analytics-facts": install_facts(app, settings, effects),
        "analytics": install_windows(app, settings, effects),
    }


def install_facts(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """The first stage: every source topic -> facts by scope on ``analytics-facts``.

    Source events are read a batch at a time and each batch's facts leave as one record
    per scope, so the second stage reads and writes per batch, not per event (the naive
    shape, one record and one changelog write per fact, cost ~8x the CPU per event).
    """
    # All sources have the same partition count, so the order-lines table (written only
    # by ``orders`` records, keyed by order id) is co-partitioned with them.
    partitions = {topic_partitions(settings, name) for name in SOURCES}
    if len(partitions) != 1:
        raise RuntimeError(f"analytics sources must share a partition count, got {partitions}")
    table = app.Table(
        ORDERS_TABLE, partitions=partitions.pop(), key_type=str,
        help="order id -> {currency, buyerId, lines, paid}: what an order counts for",
    )
    mapper = FactMapper(table)
    topic = app.topic(
        *(settings.topic(name) for name in SOURCES),
        partitions=topic_partitions(settings, "orders"),
        key_serializer="raw",
        value_serializer="raw",
    )
    facts_topic = settings.topic(FACTS)

    async def handle(events: Sequence[Any]) -> str:
        found: dict[str, list[Fact]] = {}  # by source topic and partition
        # The order-lines table's changelog records: the batch is acked after them too.
        changelog: list[asyncio.Future[Any]] = []
        for event in events:
            message = event.message
            into = found.setdefault(f"{message.topic}:{message.partition}", [])

            async def map_one(event: Any = event, raw: bytes = message.value,
                              into: list[Fact] = into) -> None:
                # The order-lines table is written per record, in its partition.
                with as_current(event), held(changelog):
                    into.extend(mapper.facts(admit(raw)))

            try:
                await map_one()
            except Exception:
                # Retried, and dead-lettered if it keeps failing, like any agent's record;
                # ``guarded`` only on failure, as the stage handles thousands a second.
                await guarded(agent="analytics-facts", effects=effects, topic=message.topic,
                              partition=message.partition, offset=message.offset,
                              key=message.key, value=message.value, process=map_one)
        last = events[-1].message
        records = [facts_record(scope, facts, source)
                   for source, mapped in found.items()
                   for scope, facts in by_scope(mapped).items()]

        async def publish() -> None:
            with held(changelog) as batch:  # one round trip for the batch's records
                for record in records:
                    await effects.emit(FACTS, record)
            await commit([batch])

        if records or changelog:
            # Dead-lettered with its facts if the broker refuses them for good.
            await guarded(agent="analytics-facts", effects=effects, topic=facts_topic,
                          partition=last.partition, offset=last.offset, key=None,
                          value=b"[" + b",".join(r.encode() for r in records) + b"]",
                          process=publish)
        return f"{len(events)} records, {sum(map(len, found.values()))} facts"

    return batched_agent(app, name="analytics-facts", topic=topic, handle=handle,
                         size=FACT_BATCH, within=FACT_BATCH_SECONDS)


def install_windows(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """The second stage: facts -> windows, closed windows, snapshots; and its timers."""
    table = source_table(
        app, settings, WINDOWS_TABLE, topic=FACTS,
        help="windows, clocks, seen fact ids, distinct viewers, visitors, product names",
    )
    decider = AnalyticsDecider(table, effects, grace=settings.analytics_grace)
    facts = source_topic(app, settings, FACTS)
    facts_name = settings.topic(FACTS)

    def owned_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == facts_name}

    publisher = SnapshotPublisher(table, effects, decider, owned=owned_partitions)

    async def handle(raw: bytes, *, offset: int) -> str:
        event = current_event()
        if event is None:  # Faust always sets it inside an agent's stream
            raise RuntimeError("analytics facts must be handled inside the agent's stream")
        return await decider.handle(raw, partition=event.message.partition, offset=offset)

    async def revoked(_app: Any, revoked: set[Any], **_: Any) -> None:
        decider.revoked(tp.partition for tp in revoked if tp.topic == facts_name)

    async def tick() -> None:
        # A record per owned partition rather than a write from here: table writes need
        # the partition's stream, and the tick is then ordered with that partition's facts.
        if not processing(app):
            return
        now = utcnow()
        for partition in sorted(owned_partitions()):
            envelope = new_event(
                AnalyticsTick(at=now), key="tick", source=SOURCE,
                event_id=derived_id("analytics-tick", str(partition), format_time(now)),
                occurred_at=now,
            )
            await facts.send(key=b"tick", value=envelope.encode(), partition=partition,
                             headers=envelope.headers())

    async def snapshots() -> None:
        if processing(app):
            await publisher.tick()

    faust_app: Any = app  # Faust's decorators are untyped
    faust_app.timer(interval=settings.analytics_tick)(tick)
    faust_app.timer(interval=settings.analytics_snapshot_interval)(snapshots)
    faust_app.on_partitions_revoked.connect(revoked)
    return guarded_agent(app, name="analytics", topic=facts, effects=effects, handle=handle,
                         pass_offset=True)
