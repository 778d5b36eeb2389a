"""Liveness and readiness: readiness really asks every dependency, worker included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import orjson
import pymongo
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from gateway import keys
from gateway.ops.keys import READINESS
from stores.heartbeats import TableRecovery, WorkerHeartbeats
from streams.flags.book import FlagBook
from streams.topics import partitions as topic_partitions
from streams.topics import worker_sources

log = logging.getLogger("mercato.gateway")
CHECK_TIMEOUT = 2.0
# A check with a deadline of its own is cancelled only if that deadline failed.
BACKSTOP = 3.0
CACHE_SECONDS = 1.0
# Topics the worker's consumer group reads; their lag is reported (``TopicSpec.worker_source``).
WORKER_SOURCES = worker_sources()


class Readiness:
    """Checks the broker, MongoDB, Redis, a consuming worker and the flag book; cached briefly."""

    def __init__(
        self, settings: Settings, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer
    ) -> None:
        self._settings = settings
        self._admin = admin
        self._offsets = offsets
        self._cached: tuple[float, bool, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        # Changes are logged once, with the failing checks; the probes themselves are not
        # access-logged (gateway.http.edge), so a starting or degraded gateway polled every
        # second does not fill the log with 503 lines.
        self._was_ready: bool | None = None

    async def check(self, app: web.Application) -> tuple[bool, dict[str, Any]]:
        """``(ready, checks)``; at most one round of checks per second."""
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1], self._cached[2]
            names = ("kafka", "mongo", "redis", "worker", "flags")
            results = await asyncio.gather(
                _timed(self._kafka()),
                _timed(_mongo_ping(app[keys.MONGO_DB]), within=CHECK_TIMEOUT + BACKSTOP),
                _timed(app[keys.REDIS].ping()),
                _timed(self._worker(WorkerHeartbeats(app[keys.REDIS], self._settings.app_id))),
                _timed(_flags(app[keys.FLAGS])),
            )
            checks = dict(zip(names, results, strict=True))
            ready = all(c["ok"] for c in checks.values())
            self._cached = (time.monotonic(), ready, checks)
            self.note(ready, checks)
            return ready, checks

    def note(self, ready: bool, checks: dict[str, Any]) -> None:
        """Log the outcome of a round of checks if it differs from the previous one."""
        if ready == self._was_ready:
            return
        if ready:
            log.info("gateway ready")
        else:
            failing = {name: c.get("error", "not ok") for name, c in checks.items() if not c["ok"]}
            # Not ready at start-up is expected (workers join after the gateway starts).
            level = logging.INFO if self._was_ready is None else logging.WARNING
            reasons = "; ".join(f"{name}: {error}" for name, error in failing.items())
            log.log(level, "gateway not ready (%s)", reasons, extra={"failing": failing})
        self._was_ready = ready

    async def _kafka(self) -> dict[str, Any]:
        topics = await self._admin.list_topics()
        missing = [t for t in (self._settings.topic(n) for n in WORKER_SOURCES) if t not in topics]
        if missing:
            raise RuntimeError(f"missing topics {missing}; run 'mercato topics create'")
        return {}

    async def _worker(self, heartbeats: WorkerHeartbeats) -> dict[str, Any]:
        group = self._settings.app_id
        recovering = await heartbeats.recoveries()
        extra = {"recovering": recovering} if recovering else {}
        processing = await heartbeats.processing()
        if recovering and processing == 0:
            # Checked before the group: a recovering worker is the reason, whatever else holds.
            restored, to_restore = _totals(recovering)
            raise CheckFailed(
                f"a worker is recovering its tables ({restored} of {to_restore} records "
                "restored); not processing yet",
                extra,
            )
        described = await self._admin.describe_consumer_groups([group])
        info = described[0].groups[0] if described and described[0].groups else None
        state = info[2] if info else "Dead"
        members = len(info[5]) if info else 0
        if state != "Stable" or members == 0:
            raise CheckFailed(f"no worker is consuming (group {group!r} is {state})", extra)
        if processing == 0:
            raise RuntimeError("a worker joined but is not processing yet (opening tables)")
        # Name the partitions: Tansu cannot answer an "all partitions" offsets request.
        partitions = [
            TopicPartition(self._settings.topic(name), p)
            for name in WORKER_SOURCES
            for p in range(topic_partitions(self._settings, name))
        ]
        committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        ends = await self._offsets.end_offsets(partitions)
        lag = sum(
            max(0, ends[tp] - committed[tp].offset)
            for tp in partitions
            if tp in committed and committed[tp].offset >= 0
        )
        return {"members": members, "processing": processing, "lag": lag, **extra}


async def _flags(book: FlagBook) -> dict[str, Any]:
    """The flag book still follows ``config`` (a dead follower freezes every flag)."""
    return book.follower()


class CheckFailed(Exception):
    """A failed check that still reports what it found (e.g. the workers' recovery)."""

    def __init__(self, reason: str, found: dict[str, Any]) -> None:
        super().__init__(reason)
        self.found = found


def _totals(recovering: Mapping[str, TableRecovery]) -> tuple[int, int]:
    """Records restored and to restore, over every recovering worker and table."""
    figures = [figure for tables in recovering.values() for figure in tables.values()]
    return (
        sum(figure["restored"] for figure in figures),
        sum(figure["toRestore"] for figure in figures),
    )


async def _mongo_ping(db: Any) -> None:
    # pymongo's own deadline, not a cancellation: cancelling an operation of the async
    # driver while it waits for a server (MongoDB down) can leave its topology lock
    # unreleased; the next operation then fails with "RuntimeError: Lock is not acquired"
    # and every later one hangs, so the gateway never recovers (seen once in the chaos
    # tier's MongoDB restart, readiness polled four times a second meanwhile).
    with pymongo.timeout(CHECK_TIMEOUT):
        await db.command("ping")


async def _timed(awaitable: Awaitable[Any], within: float = CHECK_TIMEOUT) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        extra = await asyncio.wait_for(awaitable, within)
    except Exception as exc:
        found = exc.found if isinstance(exc, CheckFailed) else {}
        return {
            "ok": False,
            "error": str(exc) or type(exc).__name__,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            **found,
        }
    result = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(extra, dict) and "ok" not in extra:
        result.update(
            {k: v for k, v in extra.items() if k != "$clusterTime" and k != "operationTime"}
        )
    return result


async def live(request: web.Request) -> web.Response:
    """GET /health/live: the process serves requests."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """GET /health/ready: 200 only when every dependency answers and a worker consumes.

    While any worker recovers its tables, ``checks.worker.recovering`` holds
    ``{workerId: {table: {restored, toRestore}}}``; it is 503 until one worker processes.
    ``checks.flags`` fails once the flag book stopped following ``config`` and, while its
    fetches fail and are retried, holds ``failures`` and ``lastError``.
    """
    is_ready, checks = await request.app[READINESS].check(request.app)
    body = {"status": "ready" if is_ready else "unavailable", "checks": checks}
    headers = {} if is_ready else {"Retry-After": "2"}
    return web.Response(
        status=200 if is_ready else 503,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


async def readiness_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the admin client and offsets consumer that readiness checks use."""
    settings = app[keys.SETTINGS]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"{settings.app_id}-health"
    )
    offsets = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-health",
        enable_auto_commit=False,
    )
    await admin.start()
    try:
        await offsets.start()
        try:
            app[READINESS] = Readiness(settings, admin, offsets)
            yield
        finally:
            await offsets.stop()
    finally:
        await admin.close()
