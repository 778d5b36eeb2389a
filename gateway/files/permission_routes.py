"""/v1/files/{id}/permissions: read grants, managed by the file's owner or an admin.

Each change is a ``files`` event projected by the files agent; the gateway
waits for the agent's answer before 201/204, so the next request already
sees the change. Purchase grants (``source: "purchase"``) come from the order
saga as the same event and can be revoked here like any other.
"""

from __future__ import annotations

from aiohttp import web

from gateway.docs.openapi import operation
from gateway.files.access import caller, managed, publish_and_wait
from gateway.files.keys import FILES
from gateway.files.schemas import PermissionBody, PermissionOut, PermissionsOut
from gateway.http.validation import parse_body
from streams.envelope import utcnow
from streams.errors import FieldError, InvalidInput, NotFound
from streams.events.files import FilePermissionGranted, FilePermissionRevoked

routes = web.RouteTableDef()
MANAGE_ERRORS: dict[int, tuple[str, None]] = {
    401: ("Not signed in", None),
    403: ("A reader who is not the owner", None),
    404: ("No such file (or grant), or not yours to see", None),
    503: ("No worker confirmed in time; the change will still be applied", None),
}


@routes.post("/v1/files/{id}/permissions")
@operation(
    "Let a user read the file",
    tags=("files",),
    auth=True,
    body=PermissionBody,
    responses={201: ("Granted", PermissionOut), 422: ("Invalid fields", None), **MANAGE_ERRORS},
)
async def grant_file_permission(request: web.Request) -> web.Response:
    """Publish ``file.permission_granted`` and wait until it is projected."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    body = await parse_body(request, PermissionBody)
    if body.user_id == meta.owner_id:
        raise InvalidInput("the owner can always read the file",
                           errors=[FieldError("userId", "is the owner")])
    granted = FilePermissionGranted(
        file_id=meta.file_id, user_id=body.user_id, access=body.access,
        source="owner" if principal.user_id == meta.owner_id else "admin",
        granted_by=principal.user_id, granted_at=utcnow(),
    )
    result = await publish_and_wait(request, granted)
    return web.json_response(result, status=201, headers={
        "Location": f"/v1/files/{meta.file_id}/permissions/{body.user_id}"
    })


@routes.delete("/v1/files/{id}/permissions/{userId}")
@operation("Stop a user reading the file", tags=("files",), auth=True,
           responses={204: ("Revoked", None), **MANAGE_ERRORS})
async def revoke_file_permission(request: web.Request) -> web.Response:
    """Publish ``file.permission_revoked`` and wait until it is projected."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    user_id = request.match_info["userId"]
    if await request.app[FILES].grant_of(meta.file_id, user_id) is None:
        raise NotFound("this user has no grant on the file")
    revoked = FilePermissionRevoked(file_id=meta.file_id, user_id=user_id,
                                    revoked_by=principal.user_id, revoked_at=utcnow())
    await publish_and_wait(request, revoked)
    return web.Response(status=204)


@routes.get("/v1/files/{id}/permissions")
@operation("Who may read the file (owner or admin)", tags=("files",), auth=True,
           responses={200: ("Active grants", PermissionsOut), **MANAGE_ERRORS})
async def list_file_permissions(request: web.Request) -> web.Response:
    """The file's active grants, oldest first."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    grants = await request.app[FILES].grants(meta.file_id)
    return web.json_response({"data": [grant.to_json() for grant in grants]})
