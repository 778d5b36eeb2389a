"""The audit log: an append-only collection, written only by the audit agent."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.keyset import keyset_after
from streams.envelope import format_time

COLLECTION = "audit_logs"
INDEXES = {
    COLLECTION: [
        IndexModel([("at", DESCENDING), ("_id", DESCENDING)], name="newest"),
        IndexModel([("actorId", 1), ("at", DESCENDING), ("_id", DESCENDING)], name="by_actor"),
        IndexModel([("action", 1), ("at", DESCENDING), ("_id", DESCENDING)], name="by_action"),
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record as stored and shown."""

    entry_id: str
    action: str
    at: datetime
    actor_id: str | None
    subject_id: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    correlation_id: str
    source: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The API's audit record."""
        return {
            "id": self.entry_id,
            "action": self.action,
            "at": format_time(self.at),
            "actorId": self.actor_id,
            "subjectId": self.subject_id,
            "ip": self.ip,
            "userAgent": self.user_agent,
            "requestId": self.request_id,
            "correlationId": self.correlation_id,
            "source": self.source,
            "details": self.details,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of the audit log listing (all optional; ``to`` is exclusive)."""

    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    """Append and list; there is deliberately no update or delete."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._logs = db[COLLECTION]

    async def append(self, entry: AuditEntry) -> bool:
        """Insert under the event id; a redelivered event is a no-op. Returns whether new."""
        doc = {
            "_id": entry.entry_id,
            "action": entry.action,
            "at": entry.at,
            "actorId": entry.actor_id,
            "subjectId": entry.subject_id,
            "ip": entry.ip,
            "userAgent": entry.user_agent,
            "requestId": entry.request_id,
            "correlationId": entry.correlation_id,
            "source": entry.source,
            "details": entry.details,
        }
        try:
            await self._logs.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def page(
        self, query: AuditQuery, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[AuditEntry]:
        """Up to ``limit`` records, newest first, strictly after the ``after`` position."""
        mongo: dict[str, Any] = {}
        if query.actor is not None:
            mongo["actorId"] = query.actor
        if query.action is not None:
            mongo["action"] = query.action
        window: dict[str, Any] = {}
        if query.since is not None:
            window["$gte"] = query.since
        if query.until is not None:
            window["$lt"] = query.until
        if window:
            mongo["at"] = window
        if after is not None:
            mongo = {"$and": [mongo, keyset_after("at", after)]} if mongo else keyset_after(
                "at", after
            )
        cursor = self._logs.find(mongo).sort([("at", DESCENDING), ("_id", DESCENDING)])
        return [_entry(doc) for doc in await cursor.limit(limit).to_list()]


def _entry(doc: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        entry_id=doc["_id"],
        action=doc["action"],
        at=doc["at"],
        actor_id=doc.get("actorId"),
        subject_id=doc.get("subjectId"),
        ip=doc.get("ip"),
        user_agent=doc.get("userAgent"),
        request_id=doc.get("requestId"),
        correlation_id=doc.get("correlationId", ""),
        source=doc.get("source", ""),
        details=doc.get("details", {}),
    )
