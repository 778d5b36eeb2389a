"""The worker's heartbeat: written every second while it is assigned, recovered and processing."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import faust
from redis.exceptions import RedisError

from config import Settings
from stores.heartbeats import WorkerHeartbeats
from stores.redisdb import redis_client

log = logging.getLogger(__name__)
INTERVAL = 1.0


def processing(app: Any) -> bool:
    """True once a rebalance has completed (tables open and recovered) and none is running."""
    return bool(app.rebalancing_count > 0 and not app.rebalancing and not app.in_recovery)


def install(app: faust.App, settings: Settings) -> None:
    """Beat every ``INTERVAL`` seconds; leave the set on shutdown."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    state: dict[str, WorkerHeartbeats] = {}
    faust_app: Any = app  # Faust's decorators are untyped

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

    async def leave(sender: Any, **_: Any) -> None:
        if "hb" in state:
            try:
                await state["hb"].leave(worker_id)
            except RedisError as exc:
                log.warning("heartbeat not removed: %r", exc)

    faust_app.timer(INTERVAL)(beat)
    faust_app.on_before_shutdown.connect(leave)
