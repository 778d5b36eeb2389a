"""File content in MongoDB GridFS (bucket ``fs``), written and read one chunk at a time.

The layout is exactly GridFS's (``fs.files`` + ``fs.chunks`` with ``files_id``
and ``n``), so ``AsyncGridFSBucket`` reads what this writes and vice versa.
We do not write through ``AsyncGridFSBucket.open_upload_stream``: pymongo 4.20
buffers up to 32 MB of chunks in memory before its first ``insert_many``
(measured: no chunk in ``fs.chunks`` after 2.4 MB written), and its download
cursor may fetch a 16 MB batch. Here an upload holds at most two chunks (one
being inserted while the next is read) and a download a batch of three.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from bson.binary import Binary
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

CHUNK_SIZE = 255 * 1024  # GridFS's default chunk size
READ_BATCH = 3
FILES = "fs.files"
CHUNKS = "fs.chunks"
# The names GridFS itself gives these indexes, so either side creating them is a no-op.
INDEXES = {
    FILES: [IndexModel([("filename", ASCENDING), ("uploadDate", ASCENDING)],
                       name="filename_1_uploadDate_1"),
            # For stores.file_sweep: uploads of a time window.
            IndexModel([("uploadDate", ASCENDING)], name="uploadDate_1")],
    CHUNKS: [IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True,
                        name="files_id_1_n_1")],
}


class ContentMissing(LookupError):
    """A chunk of a file that should exist is not there (deleted meanwhile)."""


class ChunkWriter:
    """Streams one file's bytes into GridFS chunks; ``abort`` removes every trace."""

    def __init__(self, store: ContentStore, file_id: str, filename: str) -> None:
        self._store = store
        self.file_id = file_id
        self._filename = filename
        self._buffer = bytearray()
        self._n = 0
        self.size = 0
        self._hash = hashlib.sha256()
        # One insert in flight while the next chunk is read: two chunks of memory at most.
        self._pending: asyncio.Task[Any] | None = None

    @property
    def sha256(self) -> str:
        """Hex digest of everything written so far."""
        return self._hash.hexdigest()

    async def write(self, data: bytes) -> None:
        """Append ``data``; full chunks are inserted at once, so at most one stays buffered."""
        self._hash.update(data)
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= CHUNK_SIZE:
            await self._flush(bytes(self._buffer[:CHUNK_SIZE]))
            del self._buffer[:CHUNK_SIZE]

    async def close(self, metadata: dict[str, Any]) -> None:
        """Insert the last partial chunk and the ``fs.files`` document (the file now exists)."""
        if self._buffer:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()
        await self._settle()
        await self._store.files.insert_one({
            "_id": self.file_id,
            "length": self.size,
            "chunkSize": CHUNK_SIZE,
            "uploadDate": datetime.now(UTC),
            "filename": self._filename,
            "metadata": metadata,
        })

    async def abort(self) -> None:
        """Remove every chunk written so far (and the files document, if any)."""
        self._buffer.clear()
        if self._pending is not None:
            self._pending.cancel()
            # The insert may have landed anyway; the delete below removes it either way.
            await asyncio.gather(self._pending, return_exceptions=True)
            self._pending = None
        await self._store.delete(self.file_id)

    async def _flush(self, data: bytes) -> None:
        await self._settle()
        document = {"files_id": self.file_id, "n": self._n, "data": Binary(data)}
        self._pending = asyncio.ensure_future(self._store.chunks.insert_one(document))
        self._n += 1

    async def _settle(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending


class ContentStore:
    """Bytes of files and variants, addressed by their ids."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.files = db[FILES]
        self.chunks = db[CHUNKS]

    def writer(self, file_id: str, filename: str) -> ChunkWriter:
        """A writer for a new file ``file_id``."""
        return ChunkWriter(self, file_id, filename)

    async def put(
        self, file_id: str, data: bytes, *, filename: str, metadata: dict[str, Any]
    ) -> None:
        """Store a small blob under ``file_id``, replacing any earlier copy (safe to repeat)."""
        await self.delete(file_id)
        writer = self.writer(file_id, filename)
        await writer.write(data)
        await writer.close(metadata)

    async def read_range(self, file_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive), one chunk per round trip."""
        first, last = start // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        # Small batches bound memory (READ_BATCH chunks) yet save a round trip per chunk.
        cursor = (
            self.chunks.find({"files_id": file_id, "n": {"$gte": first, "$lte": last}},
                             {"data": 1, "n": 1})
            .sort("n", ASCENDING)
            .batch_size(READ_BATCH)
        )
        expected = first
        try:
            async for doc in cursor:
                if doc["n"] != expected:
                    raise ContentMissing(f"chunk {expected} of {file_id} is missing")
                data: bytes = doc["data"]
                offset = expected * CHUNK_SIZE
                expected += 1
                if start <= offset and offset + len(data) <= end:
                    yield data  # the whole chunk: no copy
                else:
                    yield data[max(0, start - offset): end - offset]
        finally:
            await cursor.close()
        if expected != last + 1:
            raise ContentMissing(f"chunk {expected} of {file_id} is missing")

    async def read_all(self, file_id: str, *, limit: int) -> bytes:
        """The whole content of a file of at most ``limit`` bytes (for image processing)."""
        doc = await self.files.find_one({"_id": file_id}, {"length": 1})
        if doc is None:
            raise ContentMissing(f"file {file_id} has no content")
        length = int(doc["length"])
        if length > limit:
            raise ValueError(f"file {file_id} is {length} bytes, over {limit}")
        out = bytearray()
        if length:
            async for part in self.read_range(file_id, 0, length):
                out += part
        return bytes(out)

    async def mark_announced(self, file_id: str) -> None:
        """Record that ``file.uploaded`` is about to be published for ``file_id``.

        From then on the content is never swept as an orphan (``stores.file_sweep``).
        """
        await self.files.update_one({"_id": file_id}, {"$set": {"metadata.announced": True}})

    async def delete(self, file_id: str) -> None:
        """Remove a file's chunks and files document; deleting twice is fine."""
        await self.chunks.delete_many({"files_id": file_id})
        await self.files.delete_one({"_id": file_id})

    async def chunk_count(self, file_id: str) -> int:
        """How many chunks ``file_id`` has (0 once deleted or aborted)."""
        return await self.chunks.count_documents({"files_id": file_id})
