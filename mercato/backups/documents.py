"""The MongoDB collections no topic holds (``mercato.rebuild.KEPT``), as gzipped BSON.

Webhook endpoints and dead-letter re-drive claims are written by the gateway alone, and
the webhooks agent's delivery log is what keeps a replay from calling every endpoint
again: a restored stack needs them as they were. (GridFS content has its own module.)
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO, Any, cast

import bson
from pymongo.asynchronous.database import AsyncDatabase

from mercato.backups.content import CODEC
from mercato.rebuild import KEPT
from stores.file_content import CHUNKS, FILES

DIRECTORY = "mongo"
BATCH = 500
COLLECTIONS = tuple(name for name in KEPT if name not in (FILES, CHUNKS))


def path(root: Path, name: str) -> Path:
    """Where collection ``name`` is in the backup at ``root``."""
    return root / DIRECTORY / f"{name}.bson.gz"


async def dump(db: AsyncDatabase[dict[str, Any]], root: Path) -> dict[str, int]:
    """Copy every document of :data:`COLLECTIONS`; returns the count of each."""
    (root / DIRECTORY).mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in COLLECTIONS:
        count = 0
        with gzip.open(path(root, name), "wb") as sink:
            async for doc in db[name].find({}).sort("_id", 1):
                sink.write(bson.encode(doc))
                count += 1
        counts[name] = count
    return counts


async def occupied(db: AsyncDatabase[dict[str, Any]]) -> list[str]:
    """Which of :data:`COLLECTIONS` hold documents in ``db`` (a restore adds to none)."""
    return [name for name in COLLECTIONS if await db[name].count_documents({}, limit=1)]


async def load(db: AsyncDatabase[dict[str, Any]], root: Path, counts: dict[str, int]) -> None:
    """Insert the documents of every collection the backup holds (``counts``)."""
    for name in counts:
        batch: list[dict[str, Any]] = []
        with gzip.open(path(root, name), "rb") as stream:
            for doc in bson.decode_file_iter(cast(IO[bytes], stream), CODEC):
                batch.append(doc)
                if len(batch) >= BATCH:
                    await db[name].insert_many(batch, ordered=False)
                    batch = []
        if batch:
            await db[name].insert_many(batch, ordered=False)
