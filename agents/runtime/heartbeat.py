"""The worker's heartbeat: written every second while it is assigned, recovered and processing.

While it recovers its tables it reports its progress instead (``agents.runtime.recovery``),
from a task of its own: Faust starts timers only once the first recovery has completed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import faust
from redis.exceptions import RedisError

from agents.runtime.recovery import RecoveryWatch
from config import Settings
from stores.heartbeats import WorkerHeartbeats
from stores.redisdb import redis_client

log = logging.getLogger(__name__)
INTERVAL = 1.0


def processing(app: Any) -> bool:
    """True once a rebalance has completed (tables open and recovered) and none is running."""
    return bool(app.rebalancing_count > 0 and not app.rebalancing and not app.in_recovery)


def install(app: faust.App, settings: Settings) -> None:
    """Beat every ``INTERVAL`` seconds, report recovery as often; leave the set on shutdown."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    state: dict[str, WorkerHeartbeats] = {}
    faust_app: Any = app  # Faust's decorators are untyped
    watch = RecoveryWatch()
    reporter: set[asyncio.Task[None]] = set()

    def heartbeats() -> WorkerHeartbeats:
        # Created lazily: the Redis client must bind to the worker's running loop.
        if "hb" not in state:
            state["hb"] = WorkerHeartbeats(redis_client(settings), settings.app_id)
        return state["hb"]

    async def beat() -> None:
        if not processing(app):
            return
        try:
            await heartbeats().beat(worker_id)
        except RedisError as exc:
            log.warning("heartbeat not written: %r", exc)

    async def report_recovery() -> None:
        reported = False
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                tables = watch.progress(faust_app.tables.recovery) if app.in_recovery else None
            except Exception:
                # Faust's recovery state is an internal: misreading it must not stop the worker.
                log.warning("recovery progress not read", exc_info=True)
                continue
            try:
                if tables is not None:
                    await heartbeats().recovering(worker_id, tables)
                    reported = True
                elif reported:
                    await heartbeats().recovered(worker_id)
                    reported = False
            except RedisError as exc:
                log.warning("recovery progress not written: %r", exc)

    async def assigned(sender: Any, *_: Any, **__: Any) -> None:
        # Sent (with the assignment) once Faust's tables took the assignment, before their
        # recovery reads anything. Its receivers' errors crash the worker: nothing may raise.
        try:
            watch.begin(faust_app.tables.recovery)
        except Exception:
            log.warning("recovery start not read", exc_info=True)
        if not reporter:
            reporter.add(asyncio.get_running_loop().create_task(report_recovery()))

    async def leave(sender: Any, **_: Any) -> None:
        for task in reporter:
            task.cancel()
            await asyncio.wait([task])
        if "hb" in state:
            try:
                await state["hb"].leave(worker_id)
            except RedisError as exc:
                log.warning("heartbeat not removed: %r", exc)

    faust_app.timer(INTERVAL)(beat)
    faust_app.on_partitions_assigned.connect(assigned)
    faust_app.on_before_shutdown.connect(leave)
