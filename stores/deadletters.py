"""The dead letters read model: every record an agent set aside, projected from ``dlq``.

Written by the dead-letters agent (``agents.deadletters``) and read by the admin API
and ``mercato dlq``. A dead letter's ``_id`` is its ``dlq`` event id, derived from the
agent and the record's position, so a redelivered dead letter projects onto itself.
The re-drive marker is the only field anything else writes, and only once.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from stores.keyset import keyset_after
from streams.envelope import format_time

COLLECTION = "dead_letters"
INDEXES = {
    COLLECTION: [
        IndexModel([("failedAt", DESCENDING), ("_id", DESCENDING)], name="newest"),
        IndexModel([("topic", 1), ("failedAt", DESCENDING), ("_id", DESCENDING)],
                   name="by_topic"),
        IndexModel([("agent", 1), ("failedAt", DESCENDING), ("_id", DESCENDING)],
                   name="by_agent"),
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record an agent gave up on, where it was, why, and whether it was re-driven."""

    letter_id: str
    agent: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    size: int
    truncated: bool
    error: str
    attempts: int
    failed_at: datetime
    redriven_at: datetime | None = None
    redriven_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's dead letter (the value is left out: it may be large; see ``value``)."""
        return {
            "deadLetterId": self.letter_id,
            "agent": self.agent,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "size": self.size,
            "truncated": self.truncated,
            "error": self.error,
            "attempts": self.attempts,
            "failedAt": format_time(self.failed_at),
            "redrivenAt": None if self.redriven_at is None else format_time(self.redriven_at),
            "redrivenBy": self.redriven_by,
        }


class DeadLetterRepository:
    """Project, list, count and mark re-driven; a dead letter is never changed otherwise."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._letters = db[COLLECTION]

    async def record(self, letter: DeadLetter) -> bool:
        """Store ``letter`` once (True if new); a redelivered one changes nothing.

        Written at once, not held for the group commit: the agent must see a failure
        while it handles the record (``agents.deadletters.decider``).
        """
        doc = {
            "agent": letter.agent, "topic": letter.topic, "partition": letter.partition,
            "offset": letter.offset, "key": letter.key, "value": letter.value,
            "size": letter.size, "truncated": letter.truncated, "error": letter.error,
            "attempts": letter.attempts, "failedAt": letter.failed_at,
            # Stored as null, not left out: the counts' aggregation tells null from a time.
            "redrivenAt": None, "redrivenBy": None,
        }
        result = await self._letters.update_one(
            {"_id": letter.letter_id}, {"$setOnInsert": doc}, upsert=True)
        return result.upserted_id is not None

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The dead letter ``letter_id``, if projected."""
        doc = await self._letters.find_one({"_id": letter_id})
        return None if doc is None else _letter(doc)

    async def page(
        self, *, topic: str | None, agent: str | None, limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, newest first, strictly after ``after``."""
        query: dict[str, Any] = {}
        if topic is not None:
            query["topic"] = topic
        if agent is not None:
            query["agent"] = agent
        if after is not None:
            query = {"$and": [query, keyset_after("failedAt", after)]}
        cursor = self._letters.find(query).sort([("failedAt", DESCENDING), ("_id", DESCENDING)])
        return [_letter(doc) for doc in await cursor.limit(limit).to_list()]

    async def claim_redrive(self, letter_id: str, *, by: str, at: datetime) -> DeadLetter | None:
        """Mark ``letter_id`` re-driven if it was not; None if it already was (or is unknown)."""
        doc = await self._letters.find_one_and_update(
            {"_id": letter_id, "redrivenAt": None},
            {"$set": {"redrivenAt": at, "redrivenBy": by}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _letter(doc)

    async def release_redrive(self, letter_id: str, *, at: datetime) -> None:
        """Undo the claim made at ``at``: the record could not be re-produced."""
        await self._letters.update_one(
            {"_id": letter_id, "redrivenAt": at},
            {"$set": {"redrivenAt": None, "redrivenBy": None}})

    async def counts(self) -> list[tuple[str, str, int, int]]:
        """(agent, topic, dead letters, re-driven) for every pair with a dead letter."""
        cursor = await self._letters.aggregate([
            {"$group": {
                "_id": {"agent": "$agent", "topic": "$topic"},
                "total": {"$sum": 1},
                "redriven": {"$sum": {"$cond": [{"$eq": ["$redrivenAt", None]}, 0, 1]}},
            }},
        ])
        return [(row["_id"]["agent"], row["_id"]["topic"], int(row["total"]),
                 int(row["redriven"])) async for row in cursor]


def _letter(doc: dict[str, Any]) -> DeadLetter:
    return DeadLetter(
        letter_id=doc["_id"], agent=doc["agent"], topic=doc["topic"],
        partition=doc["partition"], offset=doc["offset"], key=doc.get("key"),
        value=doc["value"], size=doc.get("size", len(doc["value"].encode())),
        truncated=doc.get("truncated", False), error=doc["error"], attempts=doc["attempts"],
        failed_at=doc["failedAt"], redriven_at=doc.get("redrivenAt"),
        redriven_by=doc.get("redrivenBy"),
    )
