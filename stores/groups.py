"""The groups read model: one document per group with its member ids, projected by the agent.

Members are kept in the group's document (bounded by ``Settings.group_max_members``)
and indexed, so "is this user a member of any of these groups" is one indexed query,
asked afresh on every file read: access follows the current membership. Every
change is guarded by the id of the event that causes it (a window of the newest,
``stores.applied``), so a redelivery changes nothing. The owner is a member from the
start and cannot leave.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.applied import push_applied
from streams.envelope import format_time

COLLECTION = "groups"
INDEXES = {
    COLLECTION: [
        IndexModel([("ownerId", ASCENDING), ("createdAt", ASCENDING)], name="group_owner"),
        IndexModel([("members", ASCENDING)], name="group_members"),
    ],
}
# GET /v1/groups is not paginated: owned groups are bounded by settings, and this many
# groups a user belongs to is far more than anyone shares files through.
MAX_LISTED = 500


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    """A group as the API shows it."""

    group_id: str
    name: str
    owner_id: str
    members: tuple[str, ...]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The contract's group object."""
        return {
            "groupId": self.group_id,
            "name": self.name,
            "ownerId": self.owner_id,
            "members": list(self.members),
            "createdAt": format_time(self.created_at),
        }


class GroupRepository:
    """Intention-revealing access to ``groups``."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._groups = db[COLLECTION]

    async def create(
        self, *, group_id: str, name: str, owner_id: str, at: datetime, event_id: str
    ) -> bool:
        """Insert the group once, its owner its only member; whether this call created it."""
        try:
            result = await self._groups.update_one(
                {"_id": group_id},
                {"$setOnInsert": {"name": name, "ownerId": owner_id, "members": [owner_id],
                                  "createdAt": at, "events": [event_id]}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.upserted_id is not None

    async def add_member(self, group_id: str, user_id: str, *, event_id: str) -> None:
        """Add ``user_id`` once."""
        await self._groups.update_one(
            {"_id": group_id, "events": {"$ne": event_id}},
            {"$addToSet": {"members": user_id}, "$push": push_applied(event_id)},
        )

    async def remove_member(self, group_id: str, user_id: str, *, event_id: str) -> None:
        """Remove ``user_id`` once."""
        await self._groups.update_one(
            {"_id": group_id, "events": {"$ne": event_id}},
            {"$pull": {"members": user_id}, "$push": push_applied(event_id)},
        )

    async def get(self, group_id: str) -> Group | None:
        """The group ``group_id``, if it exists."""
        doc = await self._groups.find_one({"_id": group_id}, {"events": 0})
        return None if doc is None else _group(doc)

    async def applied(self, group_id: str, event_id: str) -> bool:
        """Whether the event ``event_id`` was already applied to the group."""
        return await self._groups.count_documents({"_id": group_id, "events": event_id}) > 0

    async def owned_count(self, owner_id: str) -> int:
        """How many groups ``owner_id`` owns."""
        return await self._groups.count_documents({"ownerId": owner_id})

    async def of_user(self, user_id: str) -> list[Group]:
        """The groups ``user_id`` belongs to (owned ones included), oldest first."""
        # The owner is a member, so the members index alone finds them all.
        cursor = (
            self._groups.find({"members": user_id}, {"events": 0})
            .sort([("createdAt", ASCENDING), ("_id", ASCENDING)])
            .limit(MAX_LISTED)
        )
        return [_group(doc) async for doc in cursor]

    async def any_has_member(self, group_ids: Iterable[str], user_id: str) -> bool:
        """Whether ``user_id`` is currently a member of at least one of ``group_ids``."""
        wanted = sorted(set(group_ids))
        if not wanted:
            return False
        doc = await self._groups.find_one(
            {"_id": {"$in": wanted}, "members": user_id}, {"_id": 1}
        )
        return doc is not None


def _group(doc: dict[str, Any]) -> Group:
    return Group(
        group_id=doc["_id"], name=doc["name"], owner_id=doc["ownerId"],
        members=tuple(doc.get("members", ())), created_at=doc["createdAt"],
    )
