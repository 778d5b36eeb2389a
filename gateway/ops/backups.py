"""/v1/admin/backups: admins start a backup of the stack and list the backups made.

A backup runs in a thread of the gateway with an event loop of its own: it reads every
topic and writes files with blocking I/O, which must not stall the loop serving requests.
At shutdown the running backup is told to stop (it fails, its directory has no manifest)
and awaited, so no thread outlives the app.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from config import Settings
from gateway import keys
from gateway.docs.openapi import operation
from gateway.http.responses import Out
from gateway.identity.auth import require_scope
from gateway.ops.keys import BACKUPS
from mercato.backups import jobs
from mercato.backups.create import create_backup
from streams.errors import Conflict

log = logging.getLogger("mercato.gateway")
routes = web.RouteTableDef()
NOT_ADMIN = "Signed in, but not an admin (FORBIDDEN, INSUFFICIENT_SCOPE)"
RATE_LIMITED = "Too many requests (RATE_LIMITED, Retry-After)"


class Backups:
    """This gateway's backup runner: at most one backup at a time across the backup dir."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.root: Path = settings.data_dir / settings.backup_dir
        self._stop = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def start(self) -> jobs.Job:
        """Start a backup; Conflict (BACKUP_RUNNING) while one runs on any gateway."""
        async with self._lock:  # two requests to this gateway do not both start one
            job = jobs.Job(self.root, jobs.new_id(), stop=self._stop)
            # The lock file, not a listing, is what keeps two gateways from both starting.
            busy = await asyncio.to_thread(jobs.claim, self.root, job.backup_id)
            if busy is not None:
                raise Conflict(f"backup {busy} is still running; list the backups to follow it",
                               code="BACKUP_RUNNING")
            try:
                await asyncio.to_thread(job.write)
            except BaseException:
                await asyncio.to_thread(jobs.release, self.root, job.backup_id)
                raise
        task = asyncio.create_task(asyncio.to_thread(self._run, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def _run(self, job: jobs.Job) -> None:
        # In the thread: a loop of its own for the backup's Kafka and MongoDB clients.
        try:
            asyncio.run(create_backup(self._settings, job.location, listener=job.listener(),
                                      stream=io.StringIO()))
        except Exception as exc:  # recorded for the admin who lists the backups
            log.exception("backup %s failed", job.backup_id)
            job.finish(f"{type(exc).__name__}: {exc}")
        else:
            job.finish(None)
        finally:
            jobs.release(self.root, job.backup_id)

    async def aclose(self) -> None:
        """Stop the running backup, if any, and wait for its thread."""
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def backups_ctx(app: web.Application) -> AsyncIterator[None]:
    """The backup runner, stopped with the app."""
    runner = app[BACKUPS] = Backups(app[keys.SETTINGS])
    try:
        yield
    finally:
        await runner.aclose()


class ProgressOut(Out):
    """How far a backup got: records plus content bytes."""

    done: int
    total: int


class ManifestSummaryOut(Out):
    """What a finished backup holds."""

    format: int
    created_at: str
    topics: int
    records: int
    files: int
    content_bytes: int


class BackupOut(Out):
    """One backup: where it is, how it went and, once completed, what it holds."""

    backup_id: str
    status: str
    created_at: str
    updated_at: str
    location: str
    error: str | None
    progress: ProgressOut
    size_bytes: int
    manifest: ManifestSummaryOut | None


class BackupStartedOut(Out):
    """A backup just started."""

    backup_id: str
    status: str
    location: str


class BackupListOut(Out):
    """Every backup in the backup dir, newest first."""

    data: list[BackupOut]


@routes.post("/v1/admin/backups")
@operation(
    "Start a backup (admin): every topic's records and the file content into a new "
    "directory under MERCATO_BACKUP_DIR; follow it with GET /v1/admin/backups",
    tags=("admin",), auth=True,
    responses={
        202: ("Started", BackupStartedOut),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        409: ("A backup is running already (BACKUP_RUNNING)", None),
        429: (RATE_LIMITED, None),
    },
)
async def start_backup(request: web.Request) -> web.Response:
    """Start a backup in the background."""
    require_scope(request, "backups:admin")
    job = await request.app[BACKUPS].start()
    return web.json_response({"backupId": job.backup_id, "status": jobs.RUNNING,
                              "location": str(job.location)}, status=202)


@routes.get("/v1/admin/backups")
@operation(
    "Backups (admin), newest first, with status, size, progress and the manifest summary",
    tags=("admin",), auth=True,
    responses={
        200: ("The backups", BackupListOut),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        429: (RATE_LIMITED, None),
    },
)
async def list_backups(request: web.Request) -> web.Response:
    """List the backups in the backup dir."""
    require_scope(request, "backups:admin")
    listed = await asyncio.to_thread(jobs.listing, request.app[BACKUPS].root)
    return web.json_response({"data": listed})
