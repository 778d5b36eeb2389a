"""/v1/files: list own files, read metadata and variants, delete."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson
from aiohttp import web

from gateway import keys
from gateway.file_access import caller, managed, publish_and_wait, readable
from gateway.openapi import operation
from gateway.routes.file_schemas import FileListOut, FileOut, VariantsOut
from stores.files import variant_json
from streams.envelope import format_time, utcnow
from streams.errors import FieldError, InvalidCursor, InvalidInput
from streams.events.files import FileDeleted

routes = web.RouteTableDef()
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PAGING = (
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                 "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"},
     "description": "nextCursor of the previous page"},
)


@routes.get("/v1/files")
@operation(
    "The caller's files, newest first",
    tags=("files",),
    auth=True,
    parameters=PAGING,
    responses={
        200: ("A page of files", FileListOut),
        400: ("Invalid cursor", None),
        401: ("Not signed in", None),
        422: ("Invalid limit", None),
    },
)
async def list_files(request: web.Request) -> web.Response:
    """Page through the caller's live files by (createdAt, id), newest first."""
    principal = caller(request)
    limit = _limit(request.query.get("limit"))
    after = _decode_cursor(request.query.get("cursor"))
    page = await request.app[keys.FILES].owned_by(principal.user_id, limit=limit + 1, after=after)
    more = len(page) > limit
    page = page[:limit]
    cursor = _encode_cursor(page[-1].created_at, page[-1].file_id) if more and page else None
    return web.json_response({
        "data": [meta.to_json() for meta in page],
        "pagination": {"limit": limit, "hasMore": more, "nextCursor": cursor},
    })


@routes.get("/v1/files/{id}")
@operation(
    "A file's metadata (owner, grantee, buyer, admin)",
    tags=("files",),
    auth=True,
    responses={200: ("Metadata", FileOut), 401: ("Not signed in", None),
               404: ("No such file, or not yours to see", None)},
)
async def get_file(request: web.Request) -> web.Response:
    """Metadata of a file the caller may read."""
    principal = caller(request)
    meta = await readable(request, principal, request.match_info["id"])
    return web.json_response(meta.to_json())


@routes.delete("/v1/files/{id}")
@operation(
    "Delete a file (owner or admin)",
    tags=("files",),
    auth=True,
    responses={
        204: ("Deleted; content removed", None),
        401: ("Not signed in", None),
        403: ("A reader who is not the owner", None),
        404: ("No such file, or not yours to see", None),
        503: ("No worker confirmed in time; the deletion will still be applied", None),
    },
)
async def delete_file(request: web.Request) -> web.Response:
    """Publish ``file.deleted`` and wait until the agent soft-deleted it and removed content."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    deleted = FileDeleted(file_id=meta.file_id, owner_id=meta.owner_id,
                          deleted_by=principal.user_id, deleted_at=utcnow())
    await publish_and_wait(request, deleted, file_id=meta.file_id)
    return web.Response(status=204)


@routes.get("/v1/files/{id}/variants")
@operation(
    "Derived renditions of an image, e.g. thumbnail (content at .../variants/{name}/content)",
    tags=("files",),
    auth=True,
    responses={200: ("Variants (empty until processed)", VariantsOut),
               401: ("Not signed in", None), 404: ("No such file, or not yours to see", None)},
)
async def file_variants(request: web.Request) -> web.Response:
    """The variants the files agent produced for a readable file."""
    principal = caller(request)
    meta = await readable(request, principal, request.match_info["id"])
    return web.json_response({"data": [variant_json(v) for v in meta.variants]})


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput("invalid query", errors=[FieldError("limit", f"1..{MAX_LIMIT}")])
    return int(raw)


def _encode_cursor(at: datetime, file_id: str) -> str:
    raw = orjson.dumps([format_time(at), file_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> tuple[datetime, str] | None:
    if raw is None:
        return None
    try:
        at, file_id = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return datetime.fromisoformat(at), str(file_id)
    except (ValueError, TypeError):
        raise InvalidCursor("this cursor was not issued by GET /v1/files") from None
