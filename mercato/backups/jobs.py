"""Backups started over the admin API: one directory each under the backup dir, beside a
status file that every gateway sharing the dir lists.

``<dir>/<backupId>/`` holds the backup, ``<dir>/<backupId>.json`` its status (written
whole, then renamed into place, so a reader never sees half of one). A running backup
rewrites its status at least every ``BEAT`` seconds; one not rewritten for ``STALE``
seconds lost its gateway (killed, or stopped mid-way) and is listed as failed.

``<dir>/running.lock``, created with ``O_EXCL``, is what makes "one at a time" hold across
gateways: listing the status files and then writing one would let two gateways that list
at once both start. It names the backup that holds it and goes when that one finishes; a
lock whose backup is no longer running (its gateway was killed) is broken by the next.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mercato.backups import manifest
from mercato.backups.errors import BackupError
from streams.envelope import format_time, utcnow

BEAT = 2.0
STALE = 30.0
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
LOST = "the gateway running it stopped before it finished"
LOCK = "running.lock"


class Interrupted(Exception):
    """The gateway is stopping: the backup in progress gives up."""


def new_id() -> str:
    """A backup id that sorts by creation time: ``20261201T201500Z-1a2b3c``."""
    return f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


class Job:
    """One backup's status file, kept up to date while it runs (called from its thread)."""

    def __init__(self, root: Path, backup_id: str, *, stop: threading.Event) -> None:
        self.backup_id = backup_id
        self.location = root / backup_id
        self._status = root / f"{backup_id}.json"
        self._stop = stop
        self._written = 0.0
        self.doc: dict[str, Any] = {"backupId": backup_id, "status": RUNNING,
                                    "createdAt": format_time(utcnow()),
                                    "location": str(self.location), "error": None,
                                    "progress": {"done": 0, "total": 0}}

    def write(self) -> None:
        """Write the status file now."""
        self.doc["updatedAt"] = format_time(utcnow())
        self._status.parent.mkdir(mode=manifest.PRIVATE, parents=True, exist_ok=True)
        partial = self._status.with_suffix(".json.tmp")
        partial.write_bytes(orjson.dumps(self.doc))
        partial.replace(self._status)
        self._written = time.monotonic()

    def listener(self) -> Callable[[int, int, str], None]:
        """A progress listener that beats the status file and stops the backup on shutdown."""
        def progressed(done: int, total: int, what: str) -> None:
            if self._stop.is_set():
                raise Interrupted("the gateway is stopping")
            self.doc["progress"] = {"done": done, "total": total}
            if time.monotonic() - self._written >= BEAT:
                self.write()
        return progressed

    def finish(self, error: str | None) -> None:
        """Record the outcome."""
        self.doc["status"] = FAILED if error else COMPLETED
        self.doc["error"] = error
        self.write()


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def listing(root: Path) -> list[dict[str, Any]]:
    """Every backup's status, newest first, with its size and, once done, its summary."""
    out = []
    for path in sorted(root.glob("*.json"), reverse=True):
        try:
            doc: dict[str, Any] = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue  # removed or rewritten meanwhile; the next listing shows it
        location = root / doc["backupId"]
        updated = doc.get("updatedAt", doc["createdAt"])
        if doc["status"] == RUNNING and path.stat().st_mtime < time.time() - STALE:
            doc = {**doc, "status": FAILED, "error": LOST}
        summary = None
        if doc["status"] == COMPLETED:
            try:
                summary = manifest.summary(manifest.read(location))
            except BackupError as exc:
                doc = {**doc, "status": FAILED, "error": str(exc)}
        out.append({"backupId": doc["backupId"], "status": doc["status"],
                    "createdAt": doc["createdAt"], "updatedAt": updated,
                    "location": str(location), "error": doc["error"],
                    "progress": doc["progress"],
                    "sizeBytes": _size(location) if location.is_dir() else 0,
                    "manifest": summary})
    return out


def running(root: Path) -> str | None:
    """The id of a backup running now (any gateway's), if there is one."""
    for entry in listing(root):
        if entry["status"] == RUNNING:
            return str(entry["backupId"])
    return None


def claim(root: Path, backup_id: str) -> str | None:
    """Take the backup dir's lock for ``backup_id``; else the id of the backup running now."""
    root.mkdir(mode=manifest.PRIVATE, parents=True, exist_ok=True)
    lock = root / LOCK
    for _ in range(2):  # once more after breaking a lock left by a killed gateway
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            holder = _holder(lock)
            if holder is None or _alive(root, holder, lock):
                return holder or "(starting)"
            _break(lock, holder)
            continue
        with os.fdopen(fd, "w") as out:
            out.write(backup_id)
        # Status files written by a gateway that predates the lock still count.
        busy = running(root)
        if busy is not None and busy != backup_id:
            release(root, backup_id)
            return busy
        return None
    return _holder(lock) or "(starting)"


def release(root: Path, backup_id: str) -> None:
    """Give the lock back if ``backup_id`` holds it (a broken lock is someone else's)."""
    lock = root / LOCK
    if _holder(lock) == backup_id:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _holder(lock: Path) -> str | None:
    try:
        return lock.read_text().strip() or None
    except FileNotFoundError:
        return None


def _alive(root: Path, holder: str, lock: Path) -> bool:
    """Whether the backup holding the lock still runs (its status is beaten)."""
    status = root / f"{holder}.json"
    try:
        doc = orjson.loads(status.read_bytes())
        beaten = status.stat().st_mtime
    except (OSError, orjson.JSONDecodeError):
        # Claimed a moment ago, status not written yet; or a lock nothing will release.
        try:
            return lock.stat().st_mtime >= time.time() - STALE
        except FileNotFoundError:
            return False
    return bool(doc.get("status") == RUNNING and beaten >= time.time() - STALE)


def _break(lock: Path, holder: str) -> None:
    """Remove a dead backup's lock, and only that one (another gateway may break it first)."""
    broken = lock.with_name(f"{LOCK}.{secrets.token_hex(4)}")
    try:
        lock.rename(broken)  # atomic: of two gateways breaking it, one gets it
    except FileNotFoundError:
        return
    if _holder(broken) != holder:
        # A new lock taken between our look and the rename: put it back.
        with contextlib.suppress(FileExistsError):
            os.link(broken, lock)
    broken.unlink()
