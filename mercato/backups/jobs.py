"""Backups started over the admin API: one directory each under the backup dir, beside a
status file that every gateway sharing the dir lists.

``<dir>/<backupId>/`` holds the backup, ``<dir>/<backupId>.json`` its status (written
whole, then renamed into place, so a reader never sees half of one). A running backup
rewrites its status at least every ``BEAT`` seconds; one not rewritten for ``STALE``
seconds lost its gateway (killed, or stopped mid-way) and is listed as failed.
"""

from __future__ import annotations

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
        self._status.parent.mkdir(parents=True, exist_ok=True)
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
