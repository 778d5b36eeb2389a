"""Orphaned file content is removed; anything a file refers to, or may yet, is kept."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from bson.binary import Binary
from pymongo.asynchronous.database import AsyncDatabase

from stores.file_content import ContentStore
from stores.file_sweep import GRACE, OrphanSweeper, Swept
from stores.files import COLLECTION as FILES_COLLECTION

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OLD = NOW - GRACE - timedelta(minutes=5)
RECENT = NOW - timedelta(minutes=5)


async def _stored(content: ContentStore, file_id: str, *, at: datetime,
                  metadata: dict[str, Any] | None = None, finished: bool = True) -> None:
    """Content as an upload leaves it: chunks stamped ``at``, then the files document."""
    stamped = ObjectId(ObjectId.from_datetime(at).binary[:4] + os.urandom(8))
    await content.chunks.insert_one({"_id": stamped, "files_id": file_id,
                                     "n": 0, "data": Binary(b"bytes")})
    if finished:
        await content.files.insert_one({"_id": file_id, "length": 5, "chunkSize": 261120,
                                        "uploadDate": at, "filename": "f",
                                        "metadata": metadata or {}})


async def test_only_content_nothing_refers_to_is_removed(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    content = ContentStore(db)
    # Removed: a gateway died before announcing it, or in the middle of writing it.
    await _stored(content, "crashed-before-publish", at=OLD)
    await _stored(content, "crashed-mid-upload", at=OLD, finished=False)
    # Kept: announced (its event may still be on its way), projected, a variant of a
    # projected file, or too recent to judge.
    await _stored(content, "announced", at=OLD, metadata={"announced": True})
    await _stored(content, "projected", at=OLD)
    await db[FILES_COLLECTION].insert_one({"_id": "projected", "ownerId": "u"})
    await _stored(content, "projected:thumbnail", at=OLD, metadata={"fileId": "projected"})
    await _stored(content, "recent", at=RECENT)
    await _stored(content, "recent-unfinished", at=RECENT, finished=False)

    swept = await OrphanSweeper(db).sweep(NOW)

    assert (swept.files, swept.chunk_sets) == (1, 1)
    remaining = {doc["_id"] async for doc in content.files.find({}, {"_id": 1})}
    assert remaining == {"announced", "projected", "projected:thumbnail", "recent"}
    chunked = set(await content.chunks.distinct("files_id"))
    assert chunked == {"announced", "projected", "projected:thumbnail", "recent",
                       "recent-unfinished"}
    # A second sweep finds nothing more.
    assert await OrphanSweeper(db).sweep(NOW) == Swept(files=0, chunk_sets=0)


async def test_mark_announced_protects_the_content(db: AsyncDatabase[dict[str, Any]]) -> None:
    content = ContentStore(db)
    await _stored(content, "f-1", at=OLD)
    await content.mark_announced("f-1")
    assert (await OrphanSweeper(db).sweep(NOW)).files == 0
    assert await content.chunk_count("f-1") == 1


async def test_the_first_sweep_starts_at_the_oldest_upload(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    content = ContentStore(db)
    ancient = NOW - GRACE - timedelta(days=3)
    await _stored(content, "left-long-ago", at=ancient)
    await _stored(content, "left-long-ago-unfinished", at=ancient + timedelta(hours=1),
                  finished=False)

    swept = await OrphanSweeper(db).sweep(NOW)

    assert (swept.files, swept.chunk_sets) == (1, 1)
    assert await content.chunks.count_documents({}) == 0


async def test_sweeps_walk_a_gap_left_by_an_outage(db: AsyncDatabase[dict[str, Any]]) -> None:
    content = ContentStore(db)
    before = NOW - timedelta(days=5)
    assert await OrphanSweeper(db).sweep(before) == Swept(files=0, chunk_sets=0)
    # No worker ran for five days; a gateway crashed mid-way through them.
    await _stored(content, "left-during-the-outage", at=before + timedelta(days=2))
    await _stored(content, "left-recently", at=OLD)
    sweeper = OrphanSweeper(db)
    walked = [await sweeper.sweep(NOW) for _ in range(4)]
    assert [s.files for s in walked] == [0, 0, 1, 0]  # one WINDOW of the gap per sweep
    assert (await sweeper.sweep(NOW)).files == 1  # caught up: the latest window again
    assert await content.files.count_documents({}) == 0
