"""Helpers for the files tests: tokens, uploads, images, GridFS inspection, polling."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from gateway.identity.auth import TokenService

Client = TestClient[web.Request, web.Application]
T = TypeVar("T")


def bearer(settings: Settings, user_id: str, *roles: str) -> dict[str, str]:
    """An Authorization header for ``user_id`` (no account needed: files trust the token)."""
    token = TokenService(settings).issue_access(user_id, roles or ("buyer",))
    return {"Authorization": f"Bearer {token}"}


def form(
    data: bytes, *, name: str = "f.bin", product_id: str | None = None, chunked: bool = False,
    declared_type: str = "application/octet-stream",
) -> aiohttp.FormData:
    """A multipart form; ``chunked`` streams the file with no Content-Length."""
    body = aiohttp.FormData()
    if product_id is not None:
        body.add_field("productId", product_id)
    if chunked:
        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 64 * 1024):
                yield data[start:start + 64 * 1024]

        body.add_field("file", pieces(), filename=name, content_type=declared_type)
    else:
        # aiohttp warns about large bytes payloads; a file object is what real clients send.
        body.add_field("file", io.BytesIO(data), filename=name, content_type=declared_type)
    return body


async def upload(
    client: Client, headers: dict[str, str], data: bytes, **kwargs: Any
) -> aiohttp.ClientResponse:
    """POST /v1/files."""
    return await client.post("/v1/files", data=form(data, **kwargs), headers=headers)


def png(width: int, height: int) -> bytes:
    """A real PNG image."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG whose header claims ``width``x``height`` (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


Db = AsyncDatabase[dict[str, Any]]


def mongo(settings: Settings) -> tuple[AsyncMongoClient[dict[str, Any]], Db]:
    """A client and the test database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    return client, client[settings.mongo_database]


async def chunk_owners(db: AsyncDatabase[dict[str, Any]]) -> set[Any]:
    """Every ``files_id`` that has chunks in ``fs.chunks``."""
    return set(await db["fs.chunks"].distinct("files_id"))


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str = "condition",
    within: float = 20.0,
    *,
    ok: Callable[[T], bool] = bool,
) -> T:
    """Poll ``probe`` until ``ok`` holds for its value (by default: it is truthy).

    The one polling helper of the tests: projections, workers and pushes are asynchronous.
    After ``within`` seconds it fails with an AssertionError naming ``what``.
    """
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value is not None and ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)
