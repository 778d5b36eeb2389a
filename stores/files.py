"""The files read model: metadata and read grants, projected by the files agent.

Every mutation is guarded by the id of the event that causes it (``events``
holds the ids already applied), so a redelivered event matches nothing and
changes nothing. Grants live in their own collection, one document per
(file, user): a popular purchasable file may have many buyers. Grants to a
group live apart, one per (file, group), and name the group only: who may read
through one is the group's membership at the time of the read (``stores.groups``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from datetime import datetime
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.applied import push_applied
from streams.envelope import format_time

COLLECTION = "files"
GRANTS = "file_grants"
GROUP_GRANTS = "file_group_grants"
INDEXES = {
    COLLECTION: [
        IndexModel(
            [("ownerId", ASCENDING), ("deleted", ASCENDING), ("createdAt", DESCENDING),
             ("_id", DESCENDING)],
            name="owner_listing",
        )
    ],
    GRANTS: [IndexModel([("fileId", ASCENDING), ("active", ASCENDING)], name="file_grants")],
    GROUP_GRANTS: [
        IndexModel([("fileId", ASCENDING), ("active", ASCENDING)], name="file_group_grants")
    ],
}
Applied = Literal["applied", "duplicate", "missing"]


@dataclasses.dataclass(frozen=True, slots=True)
class FileMeta:
    """A file's metadata as the API and the agent see it."""

    file_id: str
    owner_id: str
    name: str
    size: int
    content_type: str
    sha256: str
    product_id: str | None
    created_at: datetime
    deleted: bool
    processing: dict[str, Any]
    image: dict[str, int] | None
    variants: tuple[dict[str, Any], ...]
    version: int

    def variant(self, name: str) -> dict[str, Any] | None:
        """The variant called ``name``, if it exists."""
        return next((v for v in self.variants if v["name"] == name), None)

    def to_json(self) -> dict[str, Any]:
        """The contract's metadata object."""
        out: dict[str, Any] = {
            "fileId": self.file_id,
            "ownerId": self.owner_id,
            "name": self.name,
            "size": self.size,
            "contentType": self.content_type,
            "sha256": self.sha256,
            "createdAt": format_time(self.created_at),
            "processing": {
                k: format_time(v) if isinstance(v, datetime) else v
                for k, v in self.processing.items()
            },
            "variants": [variant_json(v) for v in self.variants],
        }
        if self.product_id is not None:
            out["productId"] = self.product_id
        if self.image is not None:
            out["image"] = self.image
        return out


def variant_json(variant: dict[str, Any]) -> dict[str, Any]:
    """A stored variant as the API shows it."""
    keys = ("name", "variantId", "width", "height", "size", "contentType")
    return {k: variant[k] for k in keys}


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """One user's read access to one file."""

    file_id: str
    user_id: str
    access: str
    source: str
    granted_by: str
    granted_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The contract's permission object."""
        return {
            "fileId": self.file_id,
            "userId": self.user_id,
            "access": self.access,
            "source": self.source,
            "grantedBy": self.granted_by,
            "grantedAt": format_time(self.granted_at),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class GroupGrant:
    """One group's read access to one file: its members' while they are members."""

    file_id: str
    group_id: str
    access: str
    source: str
    granted_by: str
    granted_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The contract's permission object, naming a group instead of a user."""
        return {
            "fileId": self.file_id,
            "groupId": self.group_id,
            "access": self.access,
            "source": self.source,
            "grantedBy": self.granted_by,
            "grantedAt": format_time(self.granted_at),
        }


class FileRepository:
    """Intention-revealing access to ``files`` and ``file_grants``."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._files = db[COLLECTION]
        self._grants = db[GRANTS]
        self._group_grants = db[GROUP_GRANTS]

    async def project_uploaded(self, doc: dict[str, Any], *, event_id: str) -> bool:
        """Insert the metadata once; returns whether this call created it."""
        try:
            result = await self._files.update_one(
                {"_id": doc["fileId"], "events": {"$ne": event_id}},
                {"$setOnInsert": {
                    **{k: v for k, v in doc.items() if k != "fileId"},
                    "deleted": False, "variants": [], "version": 1, "events": [event_id],
                }},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the document exists and already holds this event
        return result.upserted_id is not None

    async def mark_deleted(self, file_id: str, *, at: datetime, event_id: str) -> Applied:
        """Soft-delete the metadata once."""
        return await self._guarded(
            file_id, event_id, {"$set": {"deleted": True, "deletedAt": at, "updatedAt": at}}
        )

    async def record_processing(
        self,
        file_id: str,
        *,
        processing: dict[str, Any],
        image: dict[str, int] | None,
        variants: list[dict[str, Any]],
        event_id: str,
    ) -> Applied:
        """Store the outcome of image processing once."""
        fields: dict[str, Any] = {"processing": processing, "variants": variants}
        if image is not None:
            fields["image"] = image
        return await self._guarded(file_id, event_id, {"$set": fields})

    async def _guarded(self, file_id: str, event_id: str, update: dict[str, Any]) -> Applied:
        result = await self._files.update_one(
            {"_id": file_id, "events": {"$ne": event_id}},
            {**update, "$inc": {"version": 1}, "$push": push_applied(event_id)},
        )
        if result.matched_count:
            return "applied"
        return "duplicate" if await self._files.count_documents({"_id": file_id}) else "missing"

    async def get(self, file_id: str) -> FileMeta | None:
        """The metadata of ``file_id`` (deleted ones included), if it exists."""
        doc = await self._files.find_one({"_id": file_id}, {"events": 0})
        return None if doc is None else _meta(doc)

    async def owned_by(
        self, owner_id: str, *, limit: int, after: tuple[datetime, str] | None = None,
        name_contains: str | None = None,
    ) -> list[FileMeta]:
        """Live files of ``owner_id``, newest first, strictly after the ``after`` position.

        ``name_contains``: only names containing it, case-insensitively. The owner's
        index narrows the scan to their own files, and the pattern is the literal text
        escaped, so a query can never be a costly regular expression.
        """
        query: dict[str, Any] = {"ownerId": owner_id, "deleted": False}
        if name_contains:
            query["name"] = {"$regex": re.escape(name_contains), "$options": "i"}
        if after is not None:
            at, last_id = after
            query["$or"] = [{"createdAt": {"$lt": at}}, {"createdAt": at, "_id": {"$lt": last_id}}]
        cursor = (
            self._files.find(query, {"events": 0})
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_meta(doc) async for doc in cursor]

    async def grant(self, grant: Grant, *, event_id: str) -> bool:
        """Activate ``grant`` once; returns whether this call changed anything."""
        fields = {
            "fileId": grant.file_id, "userId": grant.user_id, "access": grant.access,
            "source": grant.source, "grantedBy": grant.granted_by, "grantedAt": grant.granted_at,
            "active": True,
        }
        try:
            result = await self._grants.update_one(
                {"_id": _grant_id(grant.file_id, grant.user_id), "events": {"$ne": event_id}},
                {"$set": fields, "$push": push_applied(event_id)},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return bool(result.upserted_id is not None or result.modified_count)

    async def revoke(self, file_id: str, user_id: str, *, at: datetime, event_id: str) -> bool:
        """Deactivate a grant once; returns whether this call changed anything."""
        result = await self._grants.update_one(
            {"_id": _grant_id(file_id, user_id), "events": {"$ne": event_id}},
            {"$set": {"active": False, "revokedAt": at}, "$push": push_applied(event_id)},
        )
        return bool(result.modified_count)

    async def grant_of(self, file_id: str, user_id: str) -> Grant | None:
        """The active grant of ``user_id`` on ``file_id``, if any."""
        doc = await self._grants.find_one({"_id": _grant_id(file_id, user_id), "active": True})
        return None if doc is None else _grant(doc)

    async def grants(self, file_id: str, *, limit: int = 1000) -> list[Grant]:
        """Active grants of a file, oldest first."""
        cursor = (
            self._grants.find({"fileId": file_id, "active": True})
            .sort([("grantedAt", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_grant(doc) async for doc in cursor]


    async def grant_group(self, grant: GroupGrant, *, event_id: str) -> None:
        """Activate a group's grant once."""
        fields = {
            "fileId": grant.file_id, "groupId": grant.group_id, "access": grant.access,
            "source": grant.source, "grantedBy": grant.granted_by, "grantedAt": grant.granted_at,
            "active": True,
        }
        # A duplicate key means the document exists and holds this event: applied already.
        with contextlib.suppress(DuplicateKeyError):
            await self._group_grants.update_one(
                {"_id": _grant_id(grant.file_id, grant.group_id), "events": {"$ne": event_id}},
                {"$set": fields, "$push": push_applied(event_id)},
                upsert=True,
            )

    async def revoke_group(
        self, file_id: str, group_id: str, *, at: datetime, event_id: str
    ) -> None:
        """Deactivate a group's grant once."""
        await self._group_grants.update_one(
            {"_id": _grant_id(file_id, group_id), "events": {"$ne": event_id}},
            {"$set": {"active": False, "revokedAt": at}, "$push": push_applied(event_id)},
        )

    async def group_grant_of(self, file_id: str, group_id: str) -> GroupGrant | None:
        """The active grant of group ``group_id`` on ``file_id``, if any."""
        doc = await self._group_grants.find_one(
            {"_id": _grant_id(file_id, group_id), "active": True}
        )
        return None if doc is None else _group_grant(doc)

    async def group_grants(self, file_id: str, *, limit: int = 1000) -> list[GroupGrant]:
        """Active grants of a file to groups, oldest first."""
        cursor = (
            self._group_grants.find({"fileId": file_id, "active": True})
            .sort([("grantedAt", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_group_grant(doc) async for doc in cursor]


def _group_grant(doc: dict[str, Any]) -> GroupGrant:
    return GroupGrant(
        file_id=doc["fileId"], group_id=doc["groupId"], access=doc["access"],
        source=doc["source"], granted_by=doc["grantedBy"], granted_at=doc["grantedAt"],
    )


def _grant_id(file_id: str, user_id: str) -> str:
    return f"{file_id}:{user_id}"


def _grant(doc: dict[str, Any]) -> Grant:
    return Grant(
        file_id=doc["fileId"], user_id=doc["userId"], access=doc["access"], source=doc["source"],
        granted_by=doc["grantedBy"], granted_at=doc["grantedAt"],
    )


def _meta(doc: dict[str, Any]) -> FileMeta:
    return FileMeta(
        file_id=doc["_id"],
        owner_id=doc["ownerId"],
        name=doc["name"],
        size=doc["size"],
        content_type=doc["contentType"],
        sha256=doc["sha256"],
        product_id=doc.get("productId"),
        created_at=doc["createdAt"],
        deleted=doc.get("deleted", False),
        processing=doc.get("processing", {"status": "none"}),
        image=doc.get("image"),
        variants=tuple(doc.get("variants", ())),
        version=doc.get("version", 1),
    )
