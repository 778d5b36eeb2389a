"""/v1/files: list own files, read metadata and variants, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.docs.openapi import operation
from gateway.files.access import caller, managed, publish_and_wait, readable
from gateway.files.keys import FILES
from gateway.files.schemas import FileListOut, FileOut, VariantsOut
from gateway.files.sniff import MAX_NAME
from gateway.http import fields
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response, time_position
from stores.files import variant_json
from streams.envelope import utcnow
from streams.errors import FieldError, InvalidInput
from streams.events.files import FileDeleted

routes = web.RouteTableDef()
MAX_NAME_QUERY = MAX_NAME  # no longer query can match a stored (sanitised) name
NAME_QUERY: dict[str, Any] = {
    "name": "q", "in": "query", "required": False,
    "description": "Only files whose name contains this text, case-insensitively "
                   f"(1..{MAX_NAME_QUERY} characters).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_QUERY},
}
FILE_ANSWER = fields.answer(FileOut, fields.sparse(FileOut))
FILE_PAGE_ANSWER = fields.page_answer(FileListOut, FileOut)


@routes.get("/v1/files")
@operation(
    "The caller's files, newest first; ?q= searches their names",
    tags=("files",),
    auth=True,
    parameters=(NAME_QUERY, *PAGE_PARAMETERS, fields.parameter(FileOut)),
    responses={
        200: ("A page of files (each trimmed by ?fields=)", FILE_PAGE_ANSWER),
        400: ("Invalid cursor", None),
        401: ("Not signed in", None),
        422: ("Invalid limit or q", None),
    },
)
async def list_files(request: web.Request) -> web.Response:
    """Page through the caller's live files by (createdAt, id), newest first."""
    principal = caller(request)
    q = request.query.get("q")
    if q is not None and not 1 <= len(q) <= MAX_NAME_QUERY:
        raise InvalidInput("the query has invalid parameters", errors=[
            FieldError("q", f"1 to {MAX_NAME_QUERY} characters")
        ])
    names = fields.requested(request, FileOut)
    page = page_request(request, arity=2)
    rows = await request.app[FILES].owned_by(
        principal.user_id, limit=page.fetch, after=time_position(page.after), name_contains=q
    )
    body = page_response(
        rows, page, position=lambda meta: (meta.created_at, meta.file_id),
        render=lambda meta: meta.to_json(),
    )
    return web.json_response(fields.select_page(body, names))


@routes.get("/v1/files/{id}")
@operation(
    "A file's metadata (owner, grantee, buyer, admin)",
    tags=("files",),
    auth=True,
    parameters=(fields.parameter(FileOut),),
    responses={200: ("Metadata (trimmed by ?fields=)", FILE_ANSWER), 401: ("Not signed in", None),
               404: ("No such file, or not yours to see", None)},
)
async def get_file(request: web.Request) -> web.Response:
    """Metadata of a file the caller may read."""
    principal = caller(request)
    names = fields.requested(request, FileOut)
    meta = await readable(request, principal, request.match_info["id"])
    return web.json_response(fields.select(meta.to_json(), names))


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
    await publish_and_wait(request, deleted)
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
