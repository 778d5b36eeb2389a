"""GET /v1/files/{id}/content and /v1/files/{id}/variants/{name}/content: streamed bytes.

Range and conditional semantics are documented in ``gateway.files.ranges``. Bytes
are read one GridFS chunk at a time and written with the socket's
backpressure, so a download holds about one chunk in memory.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.docs.openapi import operation
from gateway.files.access import caller, publish, readable
from gateway.files.keys import FILE_CONTENT
from gateway.files.ranges import etag_of, not_modified, select
from gateway.files.sniff import content_disposition
from gateway.http.edge import prepare
from stores.file_content import ContentMissing
from streams.envelope import utcnow
from streams.errors import NotFound
from streams.events.files import FileDownloaded

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CONDITIONAL = (
    {"name": "Range", "in": "header", "schema": {"type": "string"},
     "description": "One byte range (bytes=a-b, a-, -n); several ranges get 200 with everything"},
    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
    {"name": "If-Range", "in": "header", "schema": {"type": "string"}},
)
CONTENT_RESPONSES: dict[int, tuple[str, None]] = {
    200: ("The whole content (attachment, nosniff)", None),
    206: ("One byte range, with Content-Range", None),
    304: ("If-None-Match matched the ETag (the quoted sha256)", None),
    401: ("Not signed in", None),
    404: ("No such file, or not yours to see", None),
    416: ("The range selects no byte; Content-Range: bytes */size", None),
}
# The bytes go out with the type stored at upload, whatever it is.
CONTENT_MEDIA: dict[int, dict[str, dict[str, str]]] = {200: {"*/*": {}}, 206: {"*/*": {}}}


@routes.get("/v1/files/{id}/content")
@operation("Download a file's content", tags=("files",), auth=True, parameters=CONDITIONAL,
           responses=CONTENT_RESPONSES, content=CONTENT_MEDIA)
async def file_content(request: web.Request) -> web.StreamResponse:
    """Stream the original bytes to a reader."""
    principal = caller(request)
    meta = await readable(request, principal, request.match_info["id"])
    response, sent, partial = await _send(
        request, content_id=meta.file_id, size=meta.size, sha256=meta.sha256,
        content_type=meta.content_type, name=meta.name,
    )
    if sent is not None:
        await publish(request, FileDownloaded(
            file_id=meta.file_id, owner_id=meta.owner_id, user_id=principal.user_id, bytes=sent,
            partial=partial, at=utcnow(),
        ))
    return response


@routes.get("/v1/files/{id}/variants/{name}/content")
@operation("Download a variant's content (e.g. the thumbnail)", tags=("files",), auth=True,
           parameters=CONDITIONAL, responses=CONTENT_RESPONSES, content=CONTENT_MEDIA)
async def variant_content(request: web.Request) -> web.StreamResponse:
    """Stream a variant's bytes to anyone who may read the original."""
    principal = caller(request)
    meta = await readable(request, principal, request.match_info["id"])
    variant = meta.variant(request.match_info["name"])
    if variant is None:
        raise NotFound("no such variant (yet)")
    stem = meta.name.rsplit(".", 1)[0]
    ext = variant["contentType"].split("/")[-1].replace("jpeg", "jpg")
    response, _, _ = await _send(
        request, content_id=variant["variantId"], size=variant["size"],
        sha256=variant["sha256"], content_type=variant["contentType"],
        name=f"{stem}-{variant['name']}.{ext}",
    )
    return response


async def _send(
    request: web.Request, *, content_id: str, size: int, sha256: str, content_type: str,
    name: str,
) -> tuple[web.StreamResponse, int | None, bool]:
    """Answer 304/206/200: (response, bytes sent or None when no body, partial)."""
    etag = etag_of(sha256)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",  # nosniff: set by the edge on every response
    }
    if not_modified(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers), None, False
    chosen = select(request.headers.get("Range"), request.headers.get("If-Range"),
                    etag=etag, size=size)
    response = web.StreamResponse(status=206 if chosen.partial else 200, headers={
        **headers,
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(name),
    })
    if chosen.partial:
        response.headers["Content-Range"] = chosen.content_range()
    response.content_length = chosen.length
    await prepare(request, response)
    if request.method == "HEAD" or chosen.length == 0:
        await response.write_eof()
        return response, None, chosen.partial
    chunks = request.app[FILE_CONTENT].read_range(content_id, chosen.start, chosen.end)
    try:
        async for data in chunks:
            await response.write(data)
    except ContentMissing:
        # Deleted while we were sending: the headers are out, so cut the connection short.
        log.warning("content %s vanished during a download", content_id)
        response.force_close()
        return response, None, chosen.partial
    await response.write_eof()
    return response, chosen.length, chosen.partial
