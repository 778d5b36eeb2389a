"""File content that nothing refers to: left by a gateway that died mid-upload.

An upload writes its chunks, then its ``fs.files`` document, then marks it *announced*,
then publishes ``file.uploaded`` (``gateway/files/upload_routes.py``). A gateway that dies
before the mark leaves bytes no event will ever name; one that dies mid-stream leaves
chunks without an ``fs.files`` document. Only those are removed, once older than
``GRACE``:

* ``fs.files`` documents that are not announced, not a variant (``metadata.fileId``), and
  have no ``files`` document (so content stored before the mark existed is kept too);
* chunks of no ``fs.files`` document (the upload never finished writing).

Announced content is never removed here, even if its ``file.uploaded`` is still waiting
in Kafka or the dead-letter topic: the files agent projects it when it gets there. A
gateway dying between the mark and the publish leaks that one file's bytes, the safe
way round.

Each sweep looks at ``WINDOW`` worth of uploads, so it stays cheap however much content
is stored: the last ``WINDOW`` before the grace period, looked at again every time (a
files document is dated when its upload began, and may be written later). How far the
sweeps have got is kept in MongoDB (``PROGRESS_COLLECTION``), so uploads older than that
window are not skipped: the first sweep starts at the oldest stored upload, and after a
time with no worker running the sweeps walk the gap, ``WINDOW`` at a time, before they
look at the latest uploads again. Removal is idempotent, so every worker may sweep.
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
PROGRESS_COLLECTION = "maintenance"
PROGRESS_ID = "file-orphan-sweep"


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
        self._progress = db[PROGRESS_COLLECTION]

    async def sweep(self, now: datetime, *, grace: timedelta = GRACE,
                    window: timedelta = WINDOW) -> Swept:
        """Remove orphans uploaded in one ``window``: the one ending at ``now - grace``, or
        an older one the sweeps have not looked at yet (see the module docstring)."""
        newest = now - grace
        oldest = newest - window
        reached = await self._reached()
        if reached is not None and reached < oldest:
            oldest, newest = reached, reached + window
        swept = await self._sweep(oldest, newest)
        await self._progress.update_one(
            {"_id": PROGRESS_ID}, {"$max": {"until": newest}}, upsert=True
        )
        return swept

    async def _reached(self) -> datetime | None:
        """Where the sweeps have got to; on the first sweep, the oldest upload's time."""
        progress = await self._progress.find_one({"_id": PROGRESS_ID})
        if progress is not None:
            until: datetime = progress["until"]
            return until
        first_file = await self._content.files.find_one(
            {}, {"uploadDate": 1}, sort=[("uploadDate", 1)]
        )
        first_chunk = await self._content.chunks.find_one({}, {"_id": 1}, sort=[("_id", 1)])
        starts = [first_file["uploadDate"]] if first_file is not None else []
        if first_chunk is not None:
            starts.append(first_chunk["_id"].generation_time)
        return min(starts, default=None)

    async def _sweep(self, oldest: datetime, newest: datetime) -> Swept:
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
