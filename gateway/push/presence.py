"""Presence: distinct viewers of each ``product:`` channel, counted across every gateway.

A viewer is a signed-in user (push needs a token): the same user on two tabs of one
gateway counts once, on two gateways twice (each gateway stores counts, not members, so
nothing can tell them apart; see docs/api.md). The hub tells ``Presence`` of every
subscription; local changes are coalesced and, once a second, this gateway writes the
counts that changed to Redis (``stores.presence``), reads the global counts of the product
channels it has subscribers for in one script call, and queues a ``presence`` frame to
the subscribers of each channel whose count changed (and to the ones who joined since the
last tick, so a new subscriber learns the count at once). A reconnect storm therefore costs
one write and one read per gateway per second, however many clients come and go.

Redis away: no frames and no writes; push itself is untouched. The counts are written
again in full once Redis answers, since they may have expired meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.exceptions import RedisError

from gateway import keys
from gateway.push.connection import Connection
from gateway.push.events import Control
from gateway.push.hub import PushHub
from gateway.push.keys import PRESENCE, PUSH_HUB
from stores.presence import ALL, PresenceCounts

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between ticks: the contract's "at most once a second"
REDIS_WAIT = 2.0  # seconds a tick waits for Redis before it gives up until the next one
PRODUCT = "product:"
_OUTAGES = (RedisError, OSError, TimeoutError)


class PresenceTracker:
    """This gateway's distinct viewers per channel, and which counts changed since ``take``.

    Pure bookkeeping: a join and a leave between two takes cancel out, so a client that
    reconnects within the second changes nothing. ``ALL`` counts the distinct viewers of
    any channel (the marketplace's live viewers, on this gateway).
    """

    def __init__(self) -> None:
        self._viewers: dict[str, collections.Counter[str]] = {}  # channel -> viewer -> conns
        self._channels_of: collections.Counter[str] = collections.Counter()
        self._taken: dict[str, int] = {}
        self._dirty: set[str] = set()

    def join(self, channel: str, viewer: str) -> None:
        """One more connection of ``viewer`` follows ``channel``."""
        viewers = self._viewers.setdefault(channel, collections.Counter())
        viewers[viewer] += 1
        if viewers[viewer] == 1:
            self._dirty.add(channel)
            self._channels_of[viewer] += 1
            if self._channels_of[viewer] == 1:
                self._dirty.add(ALL)

    def leave(self, channel: str, viewer: str) -> None:
        """One connection of ``viewer`` stopped following ``channel``."""
        viewers = self._viewers.get(channel)
        if viewers is None or viewer not in viewers:
            return
        viewers[viewer] -= 1
        if viewers[viewer] > 0:
            return
        del viewers[viewer]
        if not viewers:
            del self._viewers[channel]
        self._dirty.add(channel)
        self._channels_of[viewer] -= 1
        if self._channels_of[viewer] == 0:
            del self._channels_of[viewer]
            self._dirty.add(ALL)

    def count(self, channel: str) -> int:
        """The distinct viewers of ``channel`` (``ALL``: of any channel) here, now."""
        if channel == ALL:
            return len(self._channels_of)
        return len(self._viewers.get(channel, ()))

    def take(self) -> dict[str, int]:
        """The counts that differ from the last ``take`` (0 for a channel nobody views now)."""
        changed: dict[str, int] = {}
        for channel in self._dirty:
            now = self.count(channel)
            if now != self._taken.get(channel, 0):
                changed[channel] = now
                if now:
                    self._taken[channel] = now
                else:
                    del self._taken[channel]
        self._dirty.clear()
        return changed

    def counts(self) -> dict[str, int]:
        """Every nonzero count (what a full rewrite stores); also marks them all taken."""
        self.take()
        return dict(self._taken)


class Presence:
    """The hub's subscription listener that keeps, publishes and pushes presence counts."""

    def __init__(self, hub: PushHub, store: PresenceCounts) -> None:
        self._hub = hub
        self.store = store
        self.tracker = PresenceTracker()
        self._local: dict[str, set[Connection]] = {}  # product channel -> its subscribers
        self._joined: dict[str, set[Connection]] = {}  # since the last tick
        self._shown: dict[str, int] = {}  # the count last pushed on each channel
        self._stored = False  # whether this gateway's hash holds counts
        self._lost = True  # the stored counts may be gone: write them all (first tick too)

    def subscribed(self, conn: Connection, channel: str) -> None:
        """Count ``conn``'s user as a viewer of a product channel."""
        if not channel.startswith(PRODUCT):
            return
        subs = self._local.setdefault(channel, set())
        if conn in subs:
            return
        subs.add(conn)
        self._joined.setdefault(channel, set()).add(conn)
        self.tracker.join(channel, conn.principal.user_id)

    def unsubscribed(self, conn: Connection, channel: str) -> None:
        """Stop counting ``conn`` on ``channel`` (idempotent)."""
        subs = self._local.get(channel)
        if subs is None or conn not in subs:
            return
        subs.discard(conn)
        if not subs:
            del self._local[channel]
            self._shown.pop(channel, None)
        joined = self._joined.get(channel)
        if joined is not None:
            joined.discard(conn)
        self.tracker.leave(channel, conn.principal.user_id)

    async def tick(self) -> None:
        """Publish this gateway's changed counts, read the global ones, push what changed."""
        try:
            async with asyncio.timeout(REDIS_WAIT):
                await self._publish()
                watched = list(self._local)
                totals = await self.store.totals(watched) if watched else []
        except _OUTAGES as exc:
            if not self._lost:
                log.warning("presence: Redis unavailable; counts resume when it answers",
                            extra={"error": repr(exc)})
            self._lost = True
            return
        joined, self._joined = self._joined, {}
        for channel, count in zip(watched, totals, strict=True):
            subs = self._local.get(channel)
            if not subs:
                continue  # everyone left while Redis was being read
            if self._shown.get(channel) != count:
                self._shown[channel] = count
                self._push(channel, count, list(subs))
            elif channel in joined:
                self._push(channel, count, [c for c in joined[channel] if c in subs])

    async def _publish(self) -> None:
        # Every tick writes, even with nothing changed: the write renews the hash's expiry.
        if self._lost:
            await self.store.publish(self.tracker.counts(), replace=True)
        elif not await self.store.publish(self.tracker.take()) and self._stored:
            # The hash was gone (Redis restarted, or away past the ttl): write it whole.
            await self.store.publish(self.tracker.counts(), replace=True)
        self._lost = False
        self._stored = self.tracker.count(ALL) > 0

    def _push(self, channel: str, count: int, conns: list[Connection]) -> None:
        # One frame object: its bytes are encoded once per transport, for every viewer.
        frame = Control({"type": "presence", "channel": channel, "count": count})
        for conn in conns:
            self._hub.deliver(conn, frame)

    async def run(self) -> None:
        """Tick once a second until cancelled."""
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                await self.tick()
            except Exception:
                # Presence failing must not stop it for good, nor touch push.
                log.exception("presence tick failed")


async def presence_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the hub's): count the hub's viewers for the app's lifetime."""
    settings, hub = app[keys.SETTINGS], app[PUSH_HUB]
    store = PresenceCounts(
        app[keys.REDIS], settings.app_id, app[keys.INSTANCE_ID], ttl=settings.presence_ttl
    )
    presence = Presence(hub, store)
    hub.subscription_listeners.append(presence)
    app[PRESENCE] = presence
    task = asyncio.create_task(presence.run(), name="push-presence")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task})
        hub.subscription_listeners.remove(presence)
        # Withdrawn at once on a clean stop; if Redis is away, the ttl withdraws them.
        with contextlib.suppress(*_OUTAGES):
            async with asyncio.timeout(REDIS_WAIT):
                await store.leave()
