"""The notifications read model: in-app notifications, written only by the notifications agent."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from stores import mongo
from stores.keyset import keyset_after
from streams.envelope import format_time

COLLECTION = "notifications"
INDEXES = {
    COLLECTION: [
        IndexModel(
            [("userId", 1), ("createdAt", DESCENDING), ("_id", DESCENDING)], name="by_user_newest"
        ),
        IndexModel([("userId", 1), ("read", 1)], name="by_user_read"),
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One in-app notification."""

    notification_id: str
    user_id: str
    type: str
    title: str
    body: str
    read: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API's notification object."""
        return {
            "notificationId": self.notification_id,
            "type": self.type,
            "title": self.title,
            "body": self.body,
            "read": self.read,
            "createdAt": format_time(self.created_at),
        }


class NotificationRepository:
    """Intention-revealing access to the ``notifications`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._notifications = db[COLLECTION]

    async def create(self, notification: Notification) -> bool:
        """Insert once (True if this call inserted it); re-applying it changes nothing."""
        return await mongo.update_one(
            self._notifications,
            {"_id": notification.notification_id},
            {
                "$setOnInsert": {
                    "userId": notification.user_id,
                    "type": notification.type,
                    "title": notification.title,
                    "body": notification.body,
                    "read": notification.read,
                    "createdAt": notification.created_at,
                }
            },
            upsert=True,
        )

    async def owned(self, user_id: str, notification_id: str) -> Notification | None:
        """The notification if it exists and belongs to ``user_id``."""
        doc = await self._notifications.find_one({"_id": notification_id, "userId": user_id})
        return None if doc is None else _notification(doc)

    async def mark_read(self, user_id: str, notification_id: str) -> None:
        """Idempotent: marking a read notification read again changes nothing."""
        await self._notifications.update_one(
            {"_id": notification_id, "userId": user_id}, {"$set": {"read": True}}
        )

    async def mark_all_read(self, user_id: str, *, up_to: datetime) -> None:
        """Idempotent: reads every notification of ``user_id`` created at or before ``up_to``."""
        await self._notifications.update_many(
            {"userId": user_id, "read": False, "createdAt": {"$lte": up_to}},
            {"$set": {"read": True}},
        )

    async def delete(self, user_id: str, notification_id: str) -> None:
        """Idempotent: deleting a deleted notification changes nothing."""
        await self._notifications.delete_one({"_id": notification_id, "userId": user_id})

    async def unread_count(self, user_id: str) -> int:
        """How many of ``user_id``'s notifications are unread."""
        return await self._notifications.count_documents({"userId": user_id, "read": False})

    async def page(
        self,
        user_id: str,
        *,
        limit: int,
        unread_only: bool = False,
        after: tuple[datetime, str] | None = None,
    ) -> list[Notification]:
        """Up to ``limit`` notifications, newest first, strictly after the ``after`` position."""
        query: dict[str, Any] = {"userId": user_id}
        if unread_only:
            query["read"] = False
        if after is not None:
            query.update(keyset_after("createdAt", after))
        cursor = self._notifications.find(query).sort(
            [("createdAt", DESCENDING), ("_id", DESCENDING)]
        )
        return [_notification(doc) for doc in await cursor.limit(limit).to_list()]


def _notification(doc: dict[str, Any]) -> Notification:
    return Notification(
        notification_id=doc["_id"],
        user_id=doc["userId"],
        type=doc["type"],
        title=doc["title"],
        body=doc["body"],
        read=doc["read"],
        created_at=doc["createdAt"],
    )
