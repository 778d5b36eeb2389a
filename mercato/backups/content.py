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
    """Copy every files document, then every chunk, into the backup; returns what was copied.

    Files first: a file uploaded meanwhile may then have its chunks in the backup without its
    files document (an upload in flight, which GridFS readers ignore), never the reverse.
    """
    out = paths(root)
    out[FILES].parent.mkdir(parents=True, exist_ok=True)
    files = 0
    ids = set()
    length = 0
    with gzip.open(out[FILES], "wb") as sink:
        async for doc in db[FILES].find({}).sort("_id", 1):
            sink.write(bson.encode(doc))
            files += 1
            ids.add(doc["_id"])
            length += int(doc["length"])
    chunks = 0
    with gzip.open(out[CHUNKS], "wb") as sink:
        cursor = db[CHUNKS].find({"files_id": {"$in": sorted(ids)}}).sort(
            [("files_id", 1), ("n", 1)]).batch_size(INSERT_BATCH)
        async for doc in cursor:
            sink.write(bson.encode(doc))
            chunks += 1
            progress.advance(len(doc["data"]), "file content")
    return {"files": files, "chunks": chunks, "bytes": length}


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
