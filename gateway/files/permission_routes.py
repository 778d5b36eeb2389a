"""/v1/files/{id}/permissions: read grants, managed by the file's owner or an admin.

Each change is a ``files`` event projected by the files agent; the gateway
waits for the agent's answer before 201/204, so the next request already
sees the change. Purchase grants (``source: "purchase"``) come from the order
saga as the same event and can be revoked here like any other. A grant may name
a group the granter belongs to instead of a user (``file.group_granted``); it is
revoked by the same path with the group's id in place of a user's.
"""

from __future__ import annotations

from aiohttp import web

from gateway.docs.openapi import operation
from gateway.files.access import caller, managed, publish_and_wait
from gateway.files.keys import FILES
from gateway.files.schemas import PermissionBody, PermissionOut, PermissionsOut
from gateway.groups.access import visible_group
from gateway.http.validation import parse_body
from gateway.identity.auth import Principal
from stores.files import FileMeta
from streams.envelope import utcnow
from streams.errors import FieldError, InvalidInput, NotFound
from streams.events.files import FilePermissionGranted, FilePermissionRevoked
from streams.events.groups import FileGroupGranted, FileGroupRevoked

routes = web.RouteTableDef()
MANAGE_ERRORS: dict[int, tuple[str, None]] = {
    401: ("Not signed in", None),
    403: ("A reader who is not the owner", None),
    404: ("No such file (or grant), or not yours to see", None),
    503: ("No worker confirmed in time; the change will still be applied", None),
}


@routes.post("/v1/files/{id}/permissions")
@operation(
    "Let a user, or the members of a group you belong to, read the file",
    tags=("files",),
    auth=True,
    body=PermissionBody,
    responses={
        201: ("Granted", PermissionOut),
        422: ("Invalid fields, or not exactly one of userId and groupId", None),
        **MANAGE_ERRORS,
        404: ("No such file (or group), or not yours to see", None),
    },
)
async def grant_file_permission(request: web.Request) -> web.Response:
    """Publish ``file.permission_granted`` (or ``file.group_granted``) and wait for it."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    body = await parse_body(request, PermissionBody)
    if (body.user_id is None) == (body.group_id is None):
        raise InvalidInput("name a user or a group", errors=[
            FieldError("userId", "give exactly one of userId and groupId")
        ])
    if body.group_id is not None:
        return await _grant_group(request, principal, meta, body.group_id)
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


async def _grant_group(
    request: web.Request, principal: Principal, meta: FileMeta, group_id: str
) -> web.Response:
    # Only a group one may see: a grant to a stranger's group is refused as for a missing one.
    group = await visible_group(request, principal, group_id)
    granted = FileGroupGranted(
        file_id=meta.file_id, group_id=group.group_id,
        source="owner" if principal.user_id == meta.owner_id else "admin",
        granted_by=principal.user_id, granted_at=utcnow(),
    )
    result = await publish_and_wait(request, granted)
    return web.json_response(result, status=201, headers={
        "Location": f"/v1/files/{meta.file_id}/permissions/{group.group_id}"
    })


@routes.delete("/v1/files/{id}/permissions/{userId}")
@operation("Stop a user (or, given a group's id, a group) reading the file", tags=("files",),
           auth=True, responses={204: ("Revoked", None), **MANAGE_ERRORS})
async def revoke_file_permission(request: web.Request) -> web.Response:
    """Publish ``file.permission_revoked`` (or ``file.group_revoked``) and wait for it."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    user_id = request.match_info["userId"]
    if await request.app[FILES].grant_of(meta.file_id, user_id) is None:
        if await request.app[FILES].group_grant_of(meta.file_id, user_id) is None:
            raise NotFound("this user (or group) has no grant on the file")
        await publish_and_wait(request, FileGroupRevoked(
            file_id=meta.file_id, group_id=user_id, revoked_by=principal.user_id,
            revoked_at=utcnow(),
        ))
        return web.Response(status=204)
    revoked = FilePermissionRevoked(file_id=meta.file_id, user_id=user_id,
                                    revoked_by=principal.user_id, revoked_at=utcnow())
    await publish_and_wait(request, revoked)
    return web.Response(status=204)


@routes.get("/v1/files/{id}/permissions")
@operation("Who may read the file (owner or admin)", tags=("files",), auth=True,
           responses={200: ("Active grants, to users then to groups", PermissionsOut),
                      **MANAGE_ERRORS})
async def list_file_permissions(request: web.Request) -> web.Response:
    """The file's active grants, to users then to groups, each oldest first."""
    principal = caller(request)
    meta = await managed(request, principal, request.match_info["id"])
    grants = await request.app[FILES].grants(meta.file_id)
    groups = await request.app[FILES].group_grants(meta.file_id)
    data = [grant.to_json() for grant in grants] + [grant.to_json() for grant in groups]
    return web.json_response({"data": data})
