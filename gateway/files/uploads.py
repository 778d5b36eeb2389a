"""Streaming a multipart upload into GridFS with a hard byte limit and no orphans.

The part is read in chunks and each full GridFS chunk is inserted at once, so
memory per upload is about one chunk whatever the file's size. The limit is
the smaller of the upload limit and the owner's remaining quota, less what the
owner's other uploads in flight have reserved (``gateway.files.quota``); crossing it,
a client disconnect or any other failure aborts the writer, which deletes
every chunk already written under the file id.
"""

from __future__ import annotations

import dataclasses
import re
import time
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from redis.exceptions import RedisError

from config import Settings
from gateway.files.access import ProductOwnership
from gateway.files.quota import UploadReservations
from gateway.files.sniff import SNIFF_BYTES, safe_name, sniff
from gateway.identity.auth import Principal
from stores.file_content import ChunkWriter, ContentStore
from streams.errors import (
    FieldError,
    Forbidden,
    InvalidInput,
    MalformedRequest,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)

READ_SIZE = 256 * 1024
# Multipart boundaries and part headers around the file; a Content-Length beyond
# limit + this slack cannot fit, so it is refused before anything is read.
MULTIPART_SLACK = 64 * 1024
MAX_FIELD = 256
_PRODUCT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Limit:
    """How many bytes this upload may have, and which rule says so."""

    bytes: int
    code: str

    def error(self) -> PayloadTooLarge:
        """The 413 to raise once the upload would cross the limit."""
        if self.code == "QUOTA_EXCEEDED":
            detail = f"the upload would exceed your storage quota ({self.bytes} bytes left)"
        else:
            detail = f"uploads are limited to {self.bytes} bytes"
        return PayloadTooLarge(detail, code=self.code)


def limit_for(settings: Settings, used: int) -> Limit:
    """The byte limit of an upload by an owner who already stores ``used`` bytes."""
    remaining = settings.file_quota_bytes - used
    if remaining < settings.max_upload_bytes:
        return Limit(max(0, remaining), "QUOTA_EXCEEDED")
    return Limit(settings.max_upload_bytes, "PAYLOAD_TOO_LARGE")


async def reserve(
    request: web.Request, reservations: UploadReservations, *, owner_id: str, upload_id: str,
    limit: Limit, available: int,
) -> Limit:
    """The limit of this upload once other uploads in flight hold their share of the quota.

    Reserves what the request declares (its Content-Length), or the whole limit when it
    declares nothing; ``PayloadTooLarge`` when nothing is left.
    """
    declared = request.content_length
    wanted = limit.bytes if declared is None else min(limit.bytes, declared)
    try:
        granted = await reservations.reserve(
            owner_id, upload_id, wanted=wanted, available=available,
            now_ms=time.time_ns() // 1_000_000,
        )
    except RedisError:
        raise Unavailable("the quota store is unavailable; retry shortly") from None
    if granted >= wanted:  # granted never exceeds wanted: it is the whole request
        return Limit(granted, limit.code)
    if granted <= 0:
        raise Limit(0, "QUOTA_EXCEEDED").error()
    return Limit(granted, "QUOTA_EXCEEDED")


@dataclasses.dataclass(frozen=True, slots=True)
class Received:
    """A stored upload, ready to be announced as ``file.uploaded``."""

    file_id: str
    name: str
    size: int
    sha256: str
    content_type: str
    product_id: str | None


async def receive(
    request: web.Request,
    principal: Principal,
    *,
    file_id: str,
    limit: Limit,
    content: ContentStore,
    ownership: ProductOwnership,
) -> Received:
    """Read the form, stream ``file`` into GridFS as ``file_id``; nothing stays on failure."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("send the file as multipart/form-data with a 'file' part")
    declared = request.content_length
    if declared is not None and declared > limit.bytes + MULTIPART_SLACK:
        raise limit.error()
    try:
        reader = await request.multipart()
    except ValueError:  # aiohttp's word for a missing or over-long (> 70) boundary
        raise MalformedRequest(
            "the multipart/form-data Content-Type needs a boundary of 1-70 characters",
            code="MALFORMED_MULTIPART",
        ) from None
    writer: ChunkWriter | None = None
    try:
        product_id: str | None = None
        head = b""
        name = ""
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _invalid("body", "nested multipart is not supported")
            if part.name == "productId":
                product_id = await _field(part, "productId")
                await _check_product(principal, product_id, ownership)
            elif part.name == "file":
                if writer is not None:
                    raise _invalid("file", "send exactly one file per request")
                # Browsers escape quotes/newlines as %22/%0A and aiohttp clients escape
                # everything: decode, then sanitise what was meant.
                name = safe_name(unquote(part.filename or ""))
                writer = content.writer(file_id, name)
                head = await _stream(part, writer, limit)
            else:
                raise _invalid(part.name or "body", "unknown field")
        if writer is None:
            raise _invalid("file", "this field is required")
        content_type = sniff(head)
        await writer.close({"ownerId": principal.user_id, "contentType": content_type})
        return Received(file_id, name, writer.size, writer.sha256, content_type, product_id)
    except BaseException:
        # Client gone, over the limit, bad form, cancelled: leave no orphan chunks behind.
        if writer is not None:
            await writer.abort()
        raise


async def _stream(part: BodyPartReader, writer: ChunkWriter, limit: Limit) -> bytes:
    head = bytearray()
    while chunk := await part.read_chunk(READ_SIZE):
        if writer.size + len(chunk) > limit.bytes:
            raise limit.error()
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        await writer.write(chunk)
    return bytes(head)


async def _field(part: BodyPartReader, field: str) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(MAX_FIELD):
        raw += chunk
        if len(raw) > MAX_FIELD:
            raise _invalid(field, f"at most {MAX_FIELD} bytes")
    value = raw.decode("utf-8", "replace").strip()
    if not _PRODUCT_ID.match(value):
        raise _invalid(field, "not a valid product id")
    return value


async def _check_product(
    principal: Principal, product_id: str, ownership: ProductOwnership
) -> None:
    if not await ownership(principal, product_id):
        raise Forbidden(
            "only a seller of that product (or an admin) may attach files to it",
            code="PRODUCT_NOT_OWNED",
        )


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput("the upload form is invalid", errors=[FieldError(field, message)])
