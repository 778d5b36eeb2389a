"""The users read model: profiles and credentials, written by the registrations and users agents."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from streams.envelope import format_time

COLLECTION = "users"
INDEXES = {
    COLLECTION: [IndexModel([("emailNormalized", ASCENDING)], unique=True, name="email_unique")],
}


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """A user's profile as the API shows it."""

    user_id: str
    email: str
    name: str
    roles: tuple[str, ...]
    created_at: datetime
    address: dict[str, Any] | None = None
    version: int = 1
    stock_low_threshold: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The contract's profile object."""
        out: dict[str, Any] = {
            "userId": self.user_id,
            "email": self.email,
            "name": self.name,
            "roles": list(self.roles),
            "createdAt": format_time(self.created_at),
        }
        if self.address is not None:
            out["address"] = self.address
        if self.stock_low_threshold is not None:
            out["stockLowThreshold"] = self.stock_low_threshold
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs: never leaves the gateway."""

    user_id: str
    password_hash: str
    roles: tuple[str, ...]
    version: int = 1


class UserRepository:
    """Intention-revealing access to the ``users`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._users = db[COLLECTION]

    async def project_registered(
        self,
        *,
        user_id: str,
        email: str,
        email_normalized: str,
        name: str,
        roles: list[str],
        password_hash: str,
        created_at: datetime,
        event_id: str,
    ) -> bool:
        """Insert the account once; re-applying the same registration changes nothing.

        Returns whether this call created the document.
        """
        result = await self._users.update_one(
            {"_id": user_id},
            {
                "$setOnInsert": {
                    "email": email,
                    "emailNormalized": email_normalized,
                    "name": name,
                    "roles": roles,
                    "passwordHash": password_hash,
                    "createdAt": created_at,
                    "updatedAt": created_at,
                    "version": 1,
                    "lastEventId": event_id,
                }
            },
            upsert=True,
        )
        return result.upserted_id is not None

    async def by_id(self, user_id: str) -> User | None:
        """The profile of ``user_id``, if it exists."""
        doc = await self._users.find_one({"_id": user_id}, {"passwordHash": 0})
        return None if doc is None else _user(doc)

    async def emails(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The email of each existing user among ``user_ids``, by id (one round trip)."""
        wanted = sorted(set(user_ids))
        cursor = self._users.find({"_id": {"$in": wanted}}, {"email": 1})
        return {str(doc["_id"]): str(doc["email"]) async for doc in cursor}

    async def stock_low_threshold(self, user_id: str) -> int | None:
        """The seller's own stock alert threshold, or None when they use the default."""
        doc = await self._users.find_one({"_id": user_id}, {"stockLowThreshold": 1})
        value = None if doc is None else doc.get("stockLowThreshold")
        return value if isinstance(value, int) else None

    async def credentials(self, email_normalized: str) -> Credentials | None:
        """Login data for a normalised email, if an account has it."""
        doc = await self._users.find_one(
            {"emailNormalized": email_normalized}, {"passwordHash": 1, "roles": 1, "version": 1}
        )
        if doc is None:
            return None
        return Credentials(
            doc["_id"], doc["passwordHash"], tuple(doc["roles"]), doc.get("version", 1)
        )

    async def apply_change(
        self,
        user_id: str,
        *,
        version: int,
        changes: dict[str, Any],
        removals: tuple[str, ...] = (),
        command_id: str,
        at: datetime,
    ) -> bool:
        """Set ``changes`` and move to ``version`` unless the account is already there.

        The version guard makes the projection idempotent: re-applying a command (or
        an older one arriving late) matches nothing. Returns whether this call wrote.
        """
        update: dict[str, Any] = {
            "$set": {**changes, "version": version, "updatedAt": at, "lastCommandId": command_id}
        }
        if removals:
            update["$unset"] = dict.fromkeys(removals, "")
        result = await self._users.update_one(
            {"_id": user_id, "version": {"$lt": version}}, update
        )
        return result.modified_count == 1


def _user(doc: dict[str, Any]) -> User:
    return User(
        user_id=doc["_id"],
        email=doc["email"],
        name=doc["name"],
        roles=tuple(doc["roles"]),
        created_at=doc["createdAt"],
        address=doc.get("address"),
        version=doc.get("version", 1),
        stock_low_threshold=doc.get("stockLowThreshold"),
    )
