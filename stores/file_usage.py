"""Per-owner storage usage: one document per owner, counted per file, atomically.

Why MongoDB and not a Faust table: the ``files`` topic is keyed by file id, so
one owner's files are spread over every partition; a table keyed by owner on
that stream would be written from the wrong partitions (and its changelog
would disagree with the source topic). Re-keying deltas through an extra topic
to a second agent would work too, but the gateway needs the total in MongoDB
anyway for its quota check. So each owner's document holds ``files.<fileId>:
size`` and ``bytes``, and both change in one single-document update whose
filter says whether the file is already counted: applying an upload or a
deletion twice is a no-op, from any partition, in any interleaving.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

COLLECTION = "file_usage"
# Lookups are by _id (the owner id); no secondary index is needed.
INDEXES: dict[str, list[Any]] = {}


class UsageRepository:
    """Bytes stored per owner."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._usage = db[COLLECTION]

    async def count(self, owner_id: str, file_id: str, size: int) -> bool:
        """Add ``size`` for ``file_id`` once; returns whether this call counted it."""
        field = f"files.{file_id}"
        try:
            result = await self._usage.update_one(
                {"_id": owner_id, field: {"$exists": False}},
                {"$set": {field: size}, "$inc": {"bytes": size}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the owner's document exists and already counts this file
        return bool(result.upserted_id is not None or result.modified_count)

    async def release(self, owner_id: str, file_id: str, size: int) -> bool:
        """Subtract ``size`` for ``file_id`` once; returns whether this call released it."""
        field = f"files.{file_id}"
        result = await self._usage.update_one(
            {"_id": owner_id, field: {"$exists": True}},
            {"$unset": {field: ""}, "$inc": {"bytes": -size}},
        )
        return bool(result.modified_count)

    async def used(self, owner_id: str) -> int:
        """Bytes currently counted for ``owner_id``."""
        doc = await self._usage.find_one({"_id": owner_id}, {"bytes": 1})
        return int(doc["bytes"]) if doc else 0
