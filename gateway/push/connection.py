"""One WS or SSE client: its subscriptions and its bounded outbound queue.

The hub only ever calls ``offer`` (``put_nowait``); a full queue means the
client is too slow and it is evicted. The connection's single writer drains the
queue with ``next()``, which also applies replays in order: live events of a
channel being replayed are held back until its ``ReplayBatch`` arrives, and an
event at or below the channel's delivered mark is dropped, so resume has no gap
and no duplicate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import math
from collections.abc import Collection

from gateway.identity.auth import Principal
from gateway.push.events import Control, PushEvent, ReplayBatch

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
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


class _End:
    """Queue sentinel: the connection has ended."""


Item = PushEvent | Control | ReplayBatch | _End
Outgoing = PushEvent | Control
_END = _End()


class Connection:
    """A client's subscriptions and outbound queue."""

    def __init__(self, principal: Principal, maxsize: int, stats: PushStats) -> None:
        self.principal = principal
        self.channels: set[str] = set()
        self.close_code: int | None = None
        self.close_reason = ""
        # When the credentials that opened it run out (epoch seconds; see push.sessions).
        self.session_ends_at = math.inf
        self._maxsize = maxsize
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize)
        self._stats = stats
        self._holding: set[str] = set()
        self._held: list[PushEvent] = []
        # channel -> (partition, offset) of the last event delivered on it.
        self._marks: dict[str, tuple[int, int]] = {}
        self._ready: collections.deque[Outgoing] = collections.deque()

    @property
    def ended(self) -> bool:
        """Whether the connection was closed, evicted or shut down."""
        return self.close_code is not None

    def offer(self, item: Item) -> bool:
        """Enqueue without waiting; ``False`` means the queue is full (evict the client)."""
        if self.ended:
            return True
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
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
        """Mark the connection ended; its writer stops at its next ``next()``."""
        if self.ended:
            return
        self.close_code, self.close_reason = code, reason
        # A full queue has no room for the sentinel, but then the writer is not
        # blocked in get() and sees ``ended`` before it would block again.
        self._wake()

    def _wake(self) -> None:
        """Wake a writer blocked on an empty queue."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def next(self) -> Outgoing | None:
        """The next frame to send, or ``None`` once the connection has ended."""
        while not self.ended:
            if self._ready:
                return self._count(self._ready.popleft())
            item = await self._queue.get()
            if isinstance(item, ReplayBatch):
                self._apply(item)
            elif isinstance(item, Control):
                return item
            elif isinstance(item, PushEvent):
                if item.channel not in self.channels:
                    continue  # unsubscribed while it was queued
                if item.channel in self._holding:
                    self._held.append(item)
                    if len(self._held) > self._maxsize:
                        self._stats.evictions += 1
                        self.end(CLOSE_SLOW, SLOW_CONSUMER)
                elif self._advance(item):
                    return self._count(item)
        return None

    def _count(self, out: Outgoing) -> Outgoing:
        if isinstance(out, PushEvent):
            self._stats.delivered += 1
        return out

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
                self._ready.append(event)
        if batch.notice is not None:
            self._ready.append(batch.notice)
        for channel in batch.channels & self.channels:
            mark = self._marks.get(channel)
            if mark is None or mark[0] != batch.partition or mark[1] < batch.through:
                self._marks[channel] = (batch.partition, batch.through)
        self._holding -= batch.channels
        # Held events are live, hence newer than the replay; the marks drop any overlap.
        released = [e for e in self._held if e.channel in batch.channels]
        self._held = [e for e in self._held if e.channel not in batch.channels]
        self._ready.extend(e for e in released if self._advance(e))
