"""One WS or SSE client: its subscriptions, its resume marks and its bounded output.

The hub only ever calls ``offer``, which never waits: the item is applied at once
(replay batches in order, live events of a channel being replayed held back until
its ``ReplayBatch`` arrives, an event at or below the channel's delivered mark
dropped, so resume has no gap and no duplicate) and what is to be sent is encoded
by the connection's ``Sink`` and kept until the end of the loop iteration. Then
everything one batch of records produced for this client goes out in one write
(``flush``), however many events it holds.

The bound is on what the client has not yet taken: the bytes of earlier writes the
socket's transport still buffers, at most ``max_bytes`` when the next item comes; and
at most ``max_frames`` live events held back behind a replay. Past either, ``offer``
answers ``False`` and the hub evicts the client (``1013``), so one slow reader
never delays the others, and a reader that keeps up never holds more than a
bounded amount of the gateway's memory. (``max_frames`` frames waiting here are
written at once rather than at the end of the iteration.)

No task per connection is needed for this: the hub's fan-out writes, and the
transport's buffer is the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Collection
from typing import Protocol

from gateway.identity.auth import Principal
from gateway.push.events import Control, PushEvent, ReplayBatch

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_ERROR = 1011
CLOSE_SLOW = 1013
SLOW_CONSUMER = "slow consumer"


@dataclasses.dataclass(slots=True)
class PushStats:
    """Counters the metrics exporter can read (plain ints, no prometheus dependency)."""

    connections: int = 0
    connections_total: int = 0
    evictions: int = 0
    delivered: int = 0
    replayed: int = 0
    replays_truncated: int = 0
    invalid_records: int = 0
    writes: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """How much one client may leave untaken before it is evicted (see the module doc)."""

    max_frames: int
    max_bytes: int


Outgoing = PushEvent | Control
Item = PushEvent | Control | ReplayBatch


class Sink(Protocol):
    """A transport's side of a connection (``gateway.push.ws`` and ``gateway.push.sse``)."""

    def encode(self, out: Outgoing) -> bytes:
        """The bytes that carry ``out`` (called in delivery order)."""

    def buffered(self) -> int:
        """Bytes written but not yet taken by the peer."""

    def write(self, data: bytes) -> None:
        """Send ``data`` without waiting (it may be buffered)."""

    def keep_alive(self, now: float, quiet: float) -> None:
        """Keep an idle stream open through proxies, if the transport needs that."""

    def close(self, code: int, reason: str) -> None:
        """End the stream with ``code`` (called once, after the last ``write``)."""


class Flusher:
    """Connections with output waiting, written when the loop comes round: one callback for
    all of them, not one per connection."""

    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[Connection] = []
        self._scheduled = False

    def mark(self, conn: Connection) -> None:
        """Flush ``conn`` at the end of this loop iteration."""
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn.flush()
            except Exception:
                # One broken socket must not leave every later connection unflushed.
                log.exception("push write failed", extra={"user": conn.principal.user_id})
                conn.end(CLOSE_ERROR, "internal error")


class Connection:
    """A client's subscriptions and the output waiting for the end of the loop iteration."""

    __slots__ = (
        "_flusher", "_held", "_holding", "_limits", "_marks", "_pending", "_scheduled",
        "_stats", "channels", "close_code", "close_reason", "principal", "session_ends_at",
        "sink",
    )

    def __init__(self, principal: Principal, sink: Sink, limits: Limits, stats: PushStats,
                 flusher: Flusher) -> None:
        self.principal = principal
        self._flusher = flusher
        self.sink = sink
        self.channels: set[str] = set()
        self.close_code: int | None = None
        self.close_reason = ""
        # When the credentials that opened it run out (epoch seconds; see push.sessions).
        self.session_ends_at = math.inf
        self._limits = limits
        self._stats = stats
        self._holding: set[str] = set()
        self._held: list[PushEvent] = []
        # channel -> (partition, offset) of the last event delivered on it.
        self._marks: dict[str, tuple[int, int]] = {}
        self._pending: list[bytes] = []
        self._scheduled = False

    @property
    def ended(self) -> bool:
        """Whether the connection was closed, evicted or shut down."""
        return self.close_code is not None

    def offer(self, item: Item) -> bool:
        """Apply ``item`` without waiting; ``False`` means the client is too slow (evict it)."""
        if self.ended:
            return True
        # Slowness is judged on what the client has had time to take: bytes of earlier
        # writes still in the socket's buffer. What this iteration is about to write (one
        # fetch's burst, a replay, one large event) is not held against it.
        if self.sink.buffered() > self._limits.max_bytes:
            return False
        if isinstance(item, ReplayBatch):
            self._apply(item)
        elif isinstance(item, Control):
            self._emit(item)
        elif item.channel in self.channels:  # else unsubscribed meanwhile
            if item.channel in self._holding:
                self._held.append(item)
                if len(self._held) > self._limits.max_frames:
                    return False
            elif self._advance(item):
                self._emit(item)
        return True

    def hold(self, channels: Collection[str]) -> None:
        """Hold back live events of ``channels`` until their replay batch is applied."""
        self._holding.update(channels)

    def forget(self, channel: str) -> None:
        """Drop every trace of ``channel`` (unsubscribe)."""
        self.channels.discard(channel)
        self._holding.discard(channel)
        self._marks.pop(channel, None)
        self._held = [e for e in self._held if e.channel != channel]

    def end(self, code: int, reason: str) -> None:
        """Send what is pending (unless the client is too slow for it) and close the stream."""
        if self.ended:
            return
        self.close_code, self.close_reason = code, reason
        if code == CLOSE_SLOW:
            self._pending.clear()  # it would only queue behind what the client is not reading
        self.flush()
        self.sink.close(code, reason)

    def flush(self) -> None:
        """Write everything pending in one go (the loop calls it once per iteration)."""
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._stats.writes += 1
        self.sink.write(data)

    def _emit(self, out: Outgoing) -> None:
        self._pending.append(self.sink.encode(out))
        if isinstance(out, PushEvent):
            self._stats.delivered += 1
        if len(self._pending) >= self._limits.max_frames:
            self.flush()  # a burst for one client: write now, the byte bound decides
        elif not self._scheduled:
            # Everything offered before the loop comes round (a whole fetched batch)
            # leaves in one write.
            self._scheduled = True
            self._flusher.mark(self)

    def _advance(self, event: PushEvent) -> bool:
        mark = self._marks.get(event.channel)
        if mark is not None and mark[0] == event.partition and event.offset <= mark[1]:
            return False
        self._marks[event.channel] = (event.partition, event.offset)
        return True

    def _apply(self, batch: ReplayBatch) -> None:
        for event in batch.events:
            if event.channel in self.channels and self._advance(event):
                self._stats.replayed += 1
                self._emit(event)
        if batch.notice is not None:
            self._emit(batch.notice)
        for channel in batch.channels & self.channels:
            mark = self._marks.get(channel)
            if mark is None or mark[0] != batch.partition or mark[1] < batch.through:
                self._marks[channel] = (batch.partition, batch.through)
        self._holding -= batch.channels
        # Held events are live, hence newer than the replay; the marks drop any overlap.
        released = [e for e in self._held if e.channel in batch.channels]
        self._held = [e for e in self._held if e.channel not in batch.channels]
        for event in released:
            if self._advance(event):
                self._emit(event)
