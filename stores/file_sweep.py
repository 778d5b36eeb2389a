"""File content that nothing refers to: left by a gateway that died mid-upload.

An upload writes its chunks, then its ``fs.files`` document, then marks it *announced*,
then publishes ``file.uploaded`` (``gateway/routes/file_upload.py``). A gateway that dies
before the mark leaves bytes no event will ever name; one that dies mid-stream leaves
chunks without an ``fs.files`` document. Only those are removed, once older than
``GRACE``:

* ``fs.files`` documents that are not announced, not a variant (``metadata.fileId``), and
  have no ``files`` document (so content stored before the mark existed is kept too);
* chunks of no ``fs.files`` document (the upload never finished writing).

Announced content is never removed here, even if its ``file.uploaded`` is still waiting
in Kafka or the dead-letter topic: the files agent projects it when it gets there. A
gateway dying between the mark and the publish leaks that one file's bytes, the safe
way round. Each sweep looks at ``WINDOW`` worth of uploads before the grace period, so
it stays cheap however much content is stored; removal is idempotent, so every worker
may sweep.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from stores.file_content import ContentStore
from stores.files import COLLECTION as FILES_COLLECTION

GRACE = timedelta(hours=1)
WINDOW = timedelta(hours=24)
BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep removed."""

    files: int
    chunk_sets: int


class OrphanSweeper:
    """Finds and removes orphaned content (see the module docstring)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._content = ContentStore(db)
        self._files = db[FILES_COLLECTION]

    async def sweep(self, now: datetime, *, grace: timedelta = GRACE,
                    window: timedelta = WINDOW) -> Swept:
        """Remove orphans uploaded between ``now - grace - window`` and ``now - grace``."""
        newest, oldest = now - grace, now - grace - window
        unannounced = self._content.files.find(
            {
                "uploadDate": {"$gte": oldest, "$lt": newest},
                "metadata.announced": {"$ne": True},
                "metadata.fileId": {"$exists": False},
            },
            {"_id": 1},
        )
        files = 0
        batch: list[str] = []
        async for doc in unannounced:
            batch.append(doc["_id"])
            if len(batch) == BATCH:
                files += await self._drop_unowned(batch)
                batch = []
        if batch:
            files += await self._drop_unowned(batch)
        return Swept(files=files, chunk_sets=await self._drop_unfinished(oldest, newest))

    async def _drop_unowned(self, ids: list[str]) -> int:
        owned = {doc["_id"] async for doc in self._files.find({"_id": {"$in": ids}}, {"_id": 1})}
        orphans = [i for i in ids if i not in owned]
        for file_id in orphans:
            await self._content.delete(file_id)
        return len(orphans)

    async def _drop_unfinished(self, oldest: datetime, newest: datetime) -> int:
        # The first chunk of every upload written in the window (chunk ids carry the time).
        first_chunks = self._content.chunks.find(
            {"_id": {"$gte": ObjectId.from_datetime(oldest),
                     "$lt": ObjectId.from_datetime(newest)}, "n": 0},
            {"files_id": 1},
        )
        ids = [doc["files_id"] async for doc in first_chunks]
        dropped = 0
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            finished = {
                doc["_id"]
                async for doc in self._content.files.find({"_id": {"$in": chunk}}, {"_id": 1})
            }
            for file_id in chunk:
                if file_id not in finished:
                    await self._content.chunks.delete_many({"files_id": file_id})
                    dropped += 1
        return dropped
