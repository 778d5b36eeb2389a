"""POST /v1/files: stream the bytes to GridFS, announce ``file.uploaded``, wait for the agent.

Why the gateway writes bytes at all: content is not business state and is
large, so it goes from the socket to GridFS without a detour through Kafka.
What *is* business state (owner, name, size, type, digest, product link,
grants, usage) is published as ``file.uploaded`` keyed by the new file id and
projected only by the files agent; the gateway waits (bounded, request/reply
on ``replies``) for the agent's answer so that a following GET sees the file.

If no worker answers in time the client gets 503 whose detail names the file
id, and the content stays: the event is durable on Kafka, so the agent will
project it when a worker comes back (deleting the bytes would race that
projection and leave metadata without content). A client that retries
anyway creates a second file; it can GET the first instead. If the event could
not even be published (broker down), the bytes are deleted before the 503.
"""

from __future__ import annotations

import contextlib
import uuid

from aiohttp import web
from redis.exceptions import RedisError

from gateway import keys
from gateway.docs.openapi import operation
from gateway.files.access import caller, publish_and_wait
from gateway.files.keys import FILE_CONTENT, FILE_USAGE, PRODUCT_OWNERSHIP, UPLOAD_RESERVATIONS
from gateway.files.schemas import UploadForm, UploadOut
from gateway.files.uploads import Limit, limit_for, receive, reserve
from gateway.identity.auth import Principal
from streams.envelope import utcnow
from streams.errors import Unavailable
from streams.events.files import FileUploaded

routes = web.RouteTableDef()


@routes.post("/v1/files")
@operation(
    "Upload a file (streamed; type sniffed from the bytes)",
    tags=("files",),
    auth=True,
    body=UploadForm,
    body_media="multipart/form-data",
    responses={
        201: ("Stored and listed", UploadOut),
        400: ("A malformed multipart form: no boundary (MALFORMED_MULTIPART), or a part "
              "header that is not valid (MALFORMED_REQUEST)", None),
        401: ("Not signed in", None),
        403: ("productId names a product the caller does not sell (PRODUCT_NOT_OWNED)", None),
        413: ("Over the upload limit (PAYLOAD_TOO_LARGE) or the quota (QUOTA_EXCEEDED)", None),
        422: ("Missing 'file' part or invalid fields", None),
        503: ("Stored, but no worker confirmed in time; the detail names the file id", None),
    },
)
async def upload_file(request: web.Request) -> web.Response:
    """Store the content under a new id, then have the files agent project its metadata."""
    principal = caller(request)
    app = request.app
    used = await app[FILE_USAGE].used(principal.user_id)
    settings = app[keys.SETTINGS]
    limit = limit_for(settings, used)
    if limit.bytes <= 0:
        raise limit.error()
    file_id = uuid.uuid4().hex
    reservations = app[UPLOAD_RESERVATIONS]
    limit = await reserve(
        request, reservations, owner_id=principal.user_id, upload_id=file_id, limit=limit,
        available=settings.file_quota_bytes - used,
    )
    # Held until the upload is counted in the usage (or failed); if no worker answers, it
    # is left to expire, because the usage will only grow once a worker projects the file.
    hold = False
    try:
        return await _store_and_announce(request, principal, file_id, limit)
    except Unavailable as exc:
        hold = exc.code == "WORKER_UNAVAILABLE"
        raise
    finally:
        if not hold:
            with contextlib.suppress(RedisError):
                await reservations.release(principal.user_id, file_id)


async def _store_and_announce(
    request: web.Request, principal: Principal, file_id: str, limit: Limit
) -> web.Response:
    app = request.app
    received = await receive(
        request, principal, file_id=file_id, limit=limit,
        content=app[FILE_CONTENT], ownership=app[PRODUCT_OWNERSHIP],
    )
    uploaded = FileUploaded(
        file_id=file_id, owner_id=principal.user_id, name=received.name, size=received.size,
        content_type=received.content_type, sha256=received.sha256,
        product_id=received.product_id, created_at=utcnow(),
    )
    # Before publishing: announced content is never swept as an orphan (stores.file_sweep).
    await app[FILE_CONTENT].mark_announced(file_id)
    try:
        result = await publish_and_wait(request, uploaded)
    except Unavailable as exc:
        if exc.code != "WORKER_UNAVAILABLE":
            # Not even published: nobody will ever project it, so the bytes must go.
            await app[FILE_CONTENT].delete(file_id)
            raise
        raise Unavailable(
            f"file {file_id} is stored and will be listed once a worker has processed it; "
            f"GET /v1/files/{file_id} later instead of uploading again",
            retry_after=exc.retry_after, code=exc.code,
        ) from None
    return web.json_response(
        result, status=201, headers={"Location": f"/v1/files/{file_id}"}
    )
