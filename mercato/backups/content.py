"""The GridFS file content (``fs.files`` and ``fs.chunks``) as gzipped streams of BSON."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO, Any, cast

import bson
from bson.codec_options import CodecOptions
from pymongo.asynchronous.database import AsyncDatabase

from mercato.backups.progress import Progress
from stores.file_content import CHUNKS, FILES

DIRECTORY = "content"
# Chunks are 255 KiB: a batch of this many bounds what a restore holds in memory (~4 MB).
INSERT_BATCH = 16
# File ids per chunks query of a backup: a ``$in`` of 500 ObjectIds is ~10 KB of BSON.
ID_BATCH = 500
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(document_class=dict, tz_aware=True)


def paths(root: Path) -> dict[str, Path]:
    """Collection name -> its file in the backup at ``root``."""
    return {name: root / DIRECTORY / f"{name}.bson.gz" for name in (FILES, CHUNKS)}


async def measure(db: AsyncDatabase[dict[str, Any]]) -> int:
    """How many bytes of file content there are now (the progress total of the copy)."""
    total = 0
    async for doc in db[FILES].find({}, {"length": 1}):
        total += int(doc["length"])
    return total


async def dump(db: AsyncDatabase[dict[str, Any]], root: Path, progress: Progress) -> dict[str, int]:
    """Copy every files document, then its chunks, into the backup; returns what was copied.

    Files first, a batch at a time: a file uploaded meanwhile may then have its chunks in
    the store without its files document (an upload in flight, which GridFS readers
    ignore), and those chunks are not copied; a copied files document always has its chunks.
    """
    out = paths(root)
    out[FILES].parent.mkdir(parents=True, exist_ok=True)
    counts = {"files": 0, "chunks": 0, "bytes": 0}
    with gzip.open(out[FILES], "wb") as files_sink, gzip.open(out[CHUNKS], "wb") as chunks_sink:
        # The chunks are asked for per batch of file ids: one ``$in`` holding every id
        # would outgrow the 16 MB BSON limit on a large store, and hold every id in memory.
        ids: list[Any] = []
        async for doc in db[FILES].find({}).sort("_id", 1):
            files_sink.write(bson.encode(doc))
            counts["files"] += 1
            counts["bytes"] += int(doc["length"])
            ids.append(doc["_id"])
            if len(ids) >= ID_BATCH:
                counts["chunks"] += await _dump_chunks(db, ids, chunks_sink, progress)
                ids = []
        if ids:
            counts["chunks"] += await _dump_chunks(db, ids, chunks_sink, progress)
    return counts


async def _dump_chunks(
    db: AsyncDatabase[dict[str, Any]], ids: list[Any], sink: gzip.GzipFile, progress: Progress
) -> int:
    """Write the chunks of the files ``ids`` (sorted, as read) to ``sink``; how many there were."""
    chunks = 0
    cursor = db[CHUNKS].find({"files_id": {"$in": ids}}).sort(
        [("files_id", 1), ("n", 1)]).batch_size(INSERT_BATCH)
    async for doc in cursor:
        sink.write(bson.encode(doc))
        chunks += 1
        progress.advance(len(doc["data"]), "file content")
    return chunks


async def load(db: AsyncDatabase[dict[str, Any]], root: Path, progress: Progress) -> None:
    """Insert every files document and chunk of the backup at ``root`` into ``db``."""
    source = paths(root)
    # Chunks first: a files document is what makes a file exist (stores.file_content).
    for name in (CHUNKS, FILES):
        batch: list[dict[str, Any]] = []
        with gzip.open(source[name], "rb") as stream:
            for doc in bson.decode_file_iter(cast(IO[bytes], stream), CODEC):
                batch.append(doc)
                if name == CHUNKS:
                    progress.advance(len(doc["data"]), "file content")
                if len(batch) >= INSERT_BATCH:
                    await db[name].insert_many(batch, ordered=False)
                    batch = []
        if batch:
            await db[name].insert_many(batch, ordered=False)
