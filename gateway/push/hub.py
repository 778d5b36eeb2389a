"""The gateway's push hub: the whole push topic, fanned out to local subscribers.

Every gateway instance reads every partition of the push topic (manual
assignment, no consumer group, starting at the end) and hands each record to
the connections subscribed to its key (the channel) with ``Connection.offer``,
which never waits: a client that has left too much unread is evicted (1013), so
one slow client never delays others (see ``gateway.push.connection``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any, Protocol

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from config import Settings
from gateway.http.revocation import Revocations
from gateway.identity.auth import Principal
from gateway.keys import REVOCATIONS, SETTINGS
from gateway.push.channels import Channel, OrderAccess, admins_only, authorize
from gateway.push.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_SLOW,
    SLOW_CONSUMER,
    Connection,
    Flusher,
    Item,
    Limits,
    PushStats,
    Sink,
)
from gateway.push.events import ReplayBatch, error_frame, to_event
from gateway.push.keys import PUSH_HUB
from gateway.push.positions import partition_for
from gateway.push.replay import KafkaReplayer, Replayer, ReplayFailed
from gateway.push.stream_expiry import CHECK_SECONDS, CLOSE_SESSION_ENDED, ended, session_end
from streams.envelope import EnvelopeError
from streams.errors import InvalidInput, Unavailable
from streams.follow import assign_whole_topic
from streams.topics import partitions

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 50
REPLAY_TRUNCATED = "REPLAY_TRUNCATED"
REPLAY_FAILED = "REPLAY_FAILED"
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"


class SubscriptionListener(Protocol):
    """Told of every subscription a connection gains or loses (presence counts them)."""

    def subscribed(self, conn: Connection, channel: str) -> None:
        """``conn`` now follows ``channel``."""

    def unsubscribed(self, conn: Connection, channel: str) -> None:
        """``conn`` no longer follows ``channel`` (told again for one it did not follow)."""


class PushHub:
    """Subscriptions by channel, fan-out of push records, and replay on resume."""

    def __init__(
        self,
        settings: Settings,
        *,
        replayer: Replayer | None = None,
        order_access: OrderAccess = admins_only,
        revocations: Revocations | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic("push")
        # Commerce replaces this with a buyer/seller lookup (see channels.admins_only).
        self.order_access: OrderAccess = order_access
        self.counters = PushStats()
        self.partitions = partitions(settings, "push")
        self._replayer: Replayer = replayer or KafkaReplayer(settings)
        self._limits = Limits(settings.push_queue_size, settings.push_queue_bytes)
        self._flusher = Flusher()
        self._subs: dict[str, set[Connection]] = {}
        self._live: set[Connection] = set()
        self._last: dict[int, int] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._revocations = revocations
        self._clock = clock
        self._watch: asyncio.Task[None] | None = None
        # Awaited with the channels of each fetched batch before it is fanned out, so a
        # client that sees an event knows they are done (the response cache drops there).
        self.listeners: list[Callable[[frozenset[str]], Awaitable[None]]] = []
        # Called synchronously on every subscribe/unsubscribe (close unsubscribes each).
        self.subscription_listeners: list[SubscriptionListener] = []

    def stats(self) -> dict[str, int]:
        """Counters for the metrics exporter (``connections``, ``delivered``, ``evicted``, ...)."""
        c = self.counters
        # A test's replayer counts nothing; the Kafka one counts its shared reads.
        shared = self._replayer if isinstance(self._replayer, KafkaReplayer) else None
        return {
            "connections": c.connections,
            "connections_total": c.connections_total,
            "delivered": c.delivered,
            "writes": c.writes,
            "evicted": c.evictions,
            "replayed": c.replayed,
            "replays_truncated": c.replays_truncated,
            "invalid_records": c.invalid_records,
            "replay_requests": shared.requests if shared else 0,
            "replay_passes": shared.passes if shared else 0,
        }

    # -- connections and subscriptions -------------------------------------------------

    def open(self, principal: Principal, sink: Sink) -> Connection:
        """Register a new client connection writing through ``sink``."""
        conn = Connection(principal, sink, self._limits, self.counters, self._flusher)
        conn.session_ends_at = session_end(
            principal, self._clock(), self.settings.access_token_ttl
        )
        self._live.add(conn)
        self.counters.connections = len(self._live)
        self.counters.connections_total += 1
        return conn

    def close(self, conn: Connection, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Unsubscribe ``conn`` everywhere and end it (idempotent)."""
        for channel in list(conn.channels):
            self.unsubscribe(conn, channel)
        self._live.discard(conn)
        self.counters.connections = len(self._live)
        conn.end(code, reason)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutdown") -> None:
        """End every live connection, so their handlers return and shutdown is fast."""
        for conn in list(self._live):
            self.close(conn, code, reason)

    async def authorize(self, principal: Principal, channel: object) -> Channel:
        """The parsed channel if ``principal`` may follow it (``Forbidden``/``InvalidInput``)."""
        return await authorize(principal, channel, self.order_access)

    def subscribe(self, conn: Connection, channels: Collection[str]) -> None:
        """Add live subscriptions (already authorized); bounded per connection."""
        new = set(channels) - conn.channels
        if len(conn.channels) + len(new) > MAX_SUBSCRIPTIONS:
            raise InvalidInput(
                f"at most {MAX_SUBSCRIPTIONS} channels per connection",
                code=TOO_MANY_SUBSCRIPTIONS,
            )
        for channel in new:
            conn.channels.add(channel)
            self._subs.setdefault(channel, set()).add(conn)
            for listener in self.subscription_listeners:
                listener.subscribed(conn, channel)

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        """Remove one subscription."""
        conn.forget(channel)
        subs = self._subs.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._subs[channel]
        for listener in self.subscription_listeners:
            listener.unsubscribed(conn, channel)

    def partition_of(self, channel: str) -> int:
        """The push-topic partition ``channel``'s events are produced to."""
        return partition_for(channel, self.partitions)

    def position(self, partition: int) -> int:
        """The last offset of ``partition`` the hub has dispatched (-1 if none)."""
        return self._last.get(partition, -1)

    async def resume(
        self, conn: Connection, channels: Collection[str], partition: int, after: int
    ) -> None:
        """Subscribe ``channels`` (all on ``partition``) and replay them after ``after``."""
        names = frozenset(channels)
        # Live first, held back in the connection, so nothing slips between replay and live.
        self.subscribe(conn, names)
        conn.hold(names)
        baseline = self.position(partition)
        notice = None
        events: tuple[Any, ...] = ()
        if after < baseline:
            try:
                result = await self._replayer(partition, after, baseline, names)
            except (ReplayFailed, Unavailable):
                # The replayer logged it, once for every client it failed.
                notice = error_frame(REPLAY_FAILED, "could not replay missed events; re-sync "
                                     "from the REST API", _single(names))
            except Exception:
                log.exception("push replay failed", extra={"partition": partition})
                notice = error_frame(REPLAY_FAILED, "could not replay missed events; re-sync "
                                     "from the REST API", _single(names))
            else:
                events = result.events
                if result.truncated:
                    self.counters.replays_truncated += 1
                    notice = error_frame(REPLAY_TRUNCATED, "not every missed event could be "
                                         "replayed; re-sync from the REST API", _single(names))
        self.deliver(conn, ReplayBatch(names, partition, max(after, baseline), events, notice))

    # -- fan-out ------------------------------------------------------------------------

    def dispatch(
        self, channel: str, partition: int, offset: int, value: bytes | str | Mapping[str, Any]
    ) -> None:
        """Hand one push record to its channel's subscribers, never waiting on any of them."""
        if offset > self._last.get(partition, -1):
            self._last[partition] = offset
        subs = self._subs.get(channel)
        if not subs:
            return
        try:
            event = to_event(channel, partition, offset, value)
        except EnvelopeError as exc:
            self.counters.invalid_records += 1
            log.warning(
                "push record is not an envelope", extra={"offset": offset, "error": str(exc)}
            )
            return
        for conn in list(subs):
            self.deliver(conn, event)

    async def check_sessions(self) -> None:
        """End streams whose token expired or was revoked (see ``gateway.push.stream_expiry``)."""
        try:
            done = await ended(list(self._live), self._revocations, self._clock())
        except Unavailable:
            # Redis is down: expiry can still be applied; revocations on the next check.
            done = await ended(list(self._live), None, self._clock())
            log.warning("push: revocations unavailable; checking expiry only")
        for conn, reason in done:
            log.info("ending push stream: %s", reason, extra={"user": conn.principal.user_id})
            self.close(conn, CLOSE_SESSION_ENDED, reason)

    def keep_alive(self, now: float) -> None:
        """Let every stream that has been quiet for the heartbeat say it is still there."""
        quiet = self.settings.sse_heartbeat
        for conn in self._live:
            conn.sink.keep_alive(now, quiet)

    async def _watch_sessions(self) -> None:
        # One timer for every connection's checks, rather than one per connection.
        tick = min(CHECK_SECONDS, self.settings.sse_heartbeat / 2)
        checked = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            self.keep_alive(now)
            if now - checked < CHECK_SECONDS:
                continue
            checked = now
            try:
                await self.check_sessions()
            except Exception:
                log.exception("push session check failed")

    def deliver(self, conn: Connection, item: Item) -> None:
        """Hand ``item`` to ``conn`` without waiting; a client too slow for it is evicted."""
        if not conn.offer(item):
            self.evict(conn)

    def evict(self, conn: Connection) -> None:
        """Drop a client that cannot keep up."""
        self.counters.evictions += 1
        log.info("evicting slow push client", extra={"user": conn.principal.user_id})
        self.close(conn, CLOSE_SLOW, SLOW_CONSUMER)

    # -- the consumer -------------------------------------------------------------------

    async def start(self) -> None:
        """Assign every push partition, seek to the end and start the fan-out task."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id=f"{self.settings.app_id}-push-{uuid.uuid4().hex[:8]}",
        )
        await consumer.start()
        try:
            tps = await assign_whole_topic(consumer, self.topic)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                self._last[tp.partition] = await consumer.position(tp) - 1
        except BaseException:
            await consumer.stop()
            raise
        self.partitions = len(tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="push-hub")
        self._watch = asyncio.create_task(self._watch_sessions(), name="push-sessions")

    async def stop(self) -> None:
        """Stop fan-out and replays, end every connection, close the consumer."""
        if isinstance(self._replayer, KafkaReplayer):
            await self._replayer.aclose()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.wait({self._watch})
            self._watch = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("push hub task failed", exc_info=self._task.exception())
            self._task = None
        self.close_all()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=1000)
            except KafkaError as exc:
                # aiokafka retries connection errors itself; this is a pause, not a crash.
                log.warning("push consumer error", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)
                continue
            if self.listeners and batches:
                await self._tell_listeners(batches)
            for tp, records in batches.items():
                for record in records:
                    if record.key is None:
                        continue
                    try:
                        self.dispatch(record.key.decode("utf-8", "replace"), tp.partition,
                                      record.offset, record.value)
                    except Exception:
                        # One bad record must not stop push for every client of this gateway.
                        log.exception("push dispatch failed", extra={"offset": record.offset})

    async def _tell_listeners(self, batches: Mapping[Any, Any]) -> None:
        channels = frozenset(
            record.key.decode("utf-8", "replace")
            for records in batches.values() for record in records if record.key is not None
        )
        for listener in self.listeners:
            try:
                await listener(channels)
            except Exception:
                # A listener failing must not stop push for every client of this gateway.
                log.exception("push listener failed")


def _single(names: frozenset[str]) -> str | None:
    return next(iter(names)) if len(names) == 1 else None


async def push_ctx(
    app: web.Application, *, order_access: OrderAccess = admins_only
) -> AsyncIterator[None]:
    """cleanup_ctx: run the hub for the app's lifetime."""
    hub = PushHub(app[SETTINGS], order_access=order_access, revocations=app.get(REVOCATIONS))
    await hub.start()
    app[PUSH_HUB] = hub
    try:
        yield
    finally:
        await hub.stop()


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end live WS/SSE streams before aiohttp waits for their handlers."""
    hub = app.get(PUSH_HUB)
    if hub is not None:
        hub.close_all()
