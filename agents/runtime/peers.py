"""A peer worker that died without leaving the group, evicted by a worker that survived.

Kafka evicts a member whose heartbeats stop once its session times out, and the rebalance
that follows gives its partitions to the others. noida, the dev broker, never does: a
SIGKILLed worker's partitions stayed assigned to it, unprocessed, for as long as anyone
watched (45 s at a 6 s session timeout, found by ``tests/chaos/test_failover.py``) while
its peer ran on with the other half. ``streams.membership.release_previous`` helps only
once a worker starts again in the same data dir, which a lost host never does.

So each worker beats in Redis every second from its first join on (``stores.liveness``:
before its tables recover, so recovering is not dying), from a thread of its own as Faust
heartbeats the broker from its consumer thread (a main loop busy for seconds, on a loaded
box, is not a dead worker, just as it is not to Kafka), and watches the group's worker
members: one whose beat this worker has seen stand still for a whole session timeout is
sent a LeaveGroup on its behalf, as the broker would have evicted it. Standing still is
measured on this worker's clock between its own successful reads, and the watch starts
over after a failed one, so a Redis outage (beats paused everywhere) never counts against
a peer. On Kafka this races the broker's eviction at the same timeout; whichever comes
second finds the member gone, which is the goal.

A member id of this very run that it no longer uses is evicted at once (``PeerWatch``).

Limit: a live worker whose Redis beats stop while its broker heartbeats go on (its Redis
client stuck for a session timeout) is evicted too; it rejoins, at the cost of a rebalance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from config import Settings
from stores.liveness import Liveness
from stores.redisdb import redis_client
from streams.membership import leave_group, worker_members

log = logging.getLogger(__name__)
INTERVAL = 1.0


class PeerWatch:
    """Which members to evict, as watched by the run ``own`` with a ``silence`` s patience."""

    def __init__(self, own: str, silence: float) -> None:
        self._own = own
        self._silence = silence
        self._seen: dict[str, tuple[int | None, float]] = {}  # member -> (its beat, since)
        self._ghosts: set[tuple[str, str]] = set()  # (own member id, ghost) last round

    def to_evict(
        self, now: float, members: Mapping[str, str], beats: Mapping[str, int],
        own_member: str | None,
    ) -> list[str]:
        """The member ids of ``members`` (member id -> client id) to send LeaveGroup for.

        ``beats``: each run's last beat by client id, read at ``now`` (a monotonic time);
        ``own_member``: this run's member id now, if known. Another run's member is evicted
        once its beat has stood still for ``silence`` seconds (a member first seen, or whose
        beat moved, starts a new watch). A member of this very run that is not its current
        one is a ghost: aiokafka rejoins under a new member id after an IllegalGeneration
        (a commit racing a rebalance), and noida keeps the old one, waiting for it forever.
        A ghost is evicted when seen in two rounds in a row beside the same current member
        id, so a member id read just before the consumer took a new one is never mistaken.
        """
        seen: dict[str, tuple[int | None, float]] = {}
        ghosts: set[tuple[str, str]] = set()
        found = []
        for member_id, client_id in members.items():
            if client_id == self._own:
                if own_member is not None and own_member in members and member_id != own_member:
                    ghosts.add((own_member, member_id))
                    if (own_member, member_id) in self._ghosts:
                        found.append(member_id)
                continue
            beat = beats.get(client_id)
            before = self._seen.get(member_id)
            since = before[1] if before is not None and before[0] == beat else now
            seen[member_id] = (beat, since)
            if now - since >= self._silence:
                found.append(member_id)
        self._seen = seen
        self._ghosts = ghosts
        return found

    def restart(self) -> None:
        """Forget every watch: what was seen before a failed read proves nothing."""
        self._seen = {}
        self._ghosts = set()


def own_member_id(app: Any) -> str | None:
    """The member id this worker's group consumer has now (None while unknown)."""
    try:
        member: str = app.consumer._thread._consumer._coordinator.member_id
    except AttributeError:  # Faust's and aiokafka's internals: not started yet, or moved
        return None
    return member or None


def _beat(settings: Settings, client_id: str, stop: threading.Event) -> None:
    """Beat every ``INTERVAL`` until ``stop`` is set, then withdraw this run's beat."""
    async def run() -> None:
        redis = redis_client(settings)
        liveness = Liveness(redis, settings.app_id)
        try:
            while not stop.is_set():
                try:
                    await liveness.beat(client_id)
                except (RedisError, OSError) as exc:
                    log.warning("liveness beat not written: %r", exc)
                await asyncio.sleep(INTERVAL)
            # This run stops in order and leaves its group itself.
            with contextlib.suppress(RedisError, OSError):
                await liveness.leave(client_id)
        finally:
            await redis.aclose()

    asyncio.run(run())


async def _watch(app: Any, settings: Settings, client_id: str) -> None:
    redis = redis_client(settings)
    liveness = Liveness(redis, settings.app_id)
    watch = PeerWatch(client_id, settings.worker_session_timeout)
    admin: AIOKafkaAdminClient | None = None
    try:
        while True:
            try:
                beats = await liveness.beats()
                if admin is None:
                    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
                    await admin.start()
                members = await worker_members(settings, admin)
                silent = watch.to_evict(time.monotonic(), members, beats, own_member_id(app))
                if silent:
                    await leave_group(settings, silent)
                    log.warning(
                        "evicted group members that no run answers for: a peer worker silent "
                        "for the session timeout (killed, or its host lost), or an old member "
                        "id of this one; their partitions are reassigned: %s",
                        ", ".join(f"{m} ({members[m]})" for m in silent),
                        extra={"members": silent},
                    )
            except (RedisError, KafkaError, OSError, RuntimeError) as exc:
                log.warning("peer watch round failed: %r", exc)
                watch.restart()
                if admin is not None:
                    await admin.close()
                    admin = None
            await asyncio.sleep(INTERVAL)
    finally:
        if admin is not None:
            await admin.close()
        await redis.aclose()


def install(app: faust.App, settings: Settings, client_id: str) -> None:
    """Beat and watch from the first join (``on_partitions_revoked`` precedes it) to shutdown."""
    faust_app: Any = app  # Faust's signals are untyped
    running: set[asyncio.Task[None]] = set()
    stop_beating = threading.Event()
    beater = threading.Thread(target=_beat, args=(settings, client_id, stop_beating),
                              name="liveness-beat", daemon=True)

    async def start(sender: Any, *_: Any, **__: Any) -> None:
        if not running:
            beater.start()
            running.add(asyncio.get_running_loop().create_task(_watch(app, settings, client_id)))

    async def stop(sender: Any, **_: Any) -> None:
        for task in running:
            task.cancel()
            await asyncio.wait([task])
        if beater.is_alive():
            stop_beating.set()
            await asyncio.to_thread(beater.join, 5.0)

    faust_app.on_partitions_revoked.connect(start)
    faust_app.on_partitions_assigned.connect(start)
    faust_app.on_before_shutdown.connect(stop)
