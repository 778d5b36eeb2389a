"""Wiring of the two analytics stages on a Faust app: tables, agents and timers."""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.streams import current_event

from agents.analytics.decider import AnalyticsDecider
from agents.analytics.facts import FactMapper
from agents.analytics.publisher import SnapshotPublisher
from agents.effects import Effects
from agents.heartbeat import processing
from agents.runtime import guarded_agent, source_topic
from config import Settings
from streams.envelope import Envelope, derived_id, format_time, new_event, utcnow
from streams.events.analytics import FACTS, AnalyticsTick
from streams.topics import spec as topic_spec

log = logging.getLogger(__name__)
SOURCE = "agents.analytics"
SOURCES = ("orders", "payments", "users", "files", "products", "analytics")
ORDERS_TABLE = "analytics-orders"
WINDOWS_TABLE = "analytics-windows"


def install_facts(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """The first stage: every source topic -> facts keyed by scope on ``analytics-facts``."""
    # All sources have the same partition count, so the order-lines table (written only
    # by ``orders`` records, keyed by order id) is co-partitioned with them.
    partitions = {topic_spec(name).partitions for name in SOURCES}
    if len(partitions) != 1:
        raise RuntimeError(f"analytics sources must share a partition count, got {partitions}")
    table = app.Table(
        ORDERS_TABLE, partitions=partitions.pop(), key_type=str,
        help="order id -> {currency, buyerId, lines, paid}: what an order counts for",
    )
    mapper = FactMapper(table)
    topic = app.topic(
        *(settings.topic(name) for name in SOURCES),
        partitions=topic_spec("orders").partitions,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def handle(raw: bytes) -> str:
        facts = mapper.facts(Envelope.decode(raw))
        for fact in facts:
            await effects.emit(FACTS, fact)
        return f"{len(facts)} facts"

    return guarded_agent(app, name="analytics-facts", topic=topic, effects=effects,
                         handle=handle)


def install(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """The second stage: facts -> windows, closed windows, snapshots; and its timers."""
    table = app.Table(
        WINDOWS_TABLE, partitions=topic_spec(FACTS).partitions, key_type=str,
        help="windows, clocks, seen fact ids, distinct viewers, visitors, product names",
    )
    decider = AnalyticsDecider(table, effects, grace=settings.analytics_grace)
    facts = source_topic(app, settings, FACTS)
    facts_name = settings.topic(FACTS)

    def owned_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == facts_name}

    publisher = SnapshotPublisher(table, effects, decider, owned=owned_partitions)

    async def handle(raw: bytes) -> str:
        event = current_event()
        if event is None:  # Faust always sets it inside an agent's stream
            raise RuntimeError("analytics facts must be handled inside the agent's stream")
        return await decider.handle(raw, partition=event.message.partition)

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
    return guarded_agent(app, name="analytics", topic=facts, effects=effects, handle=handle)
