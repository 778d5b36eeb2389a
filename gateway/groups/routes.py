"""/v1/groups: create a group, list yours, add and remove members.

Each change is a command the groups agent decides (limits, ownership) and
projects; the gateway waits for its answer, so the next request already sees
it. A group is visible only to its members (the owner is one): anyone else
gets 404, as for files.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.docs.openapi import operation
from gateway.files.access import caller
from gateway.groups.access import visible_group
from gateway.groups.keys import GROUPS
from gateway.groups.schemas import GroupBody, GroupOut, GroupsOut, MemberBody
from gateway.http.validation import parse_body
from gateway.identity.auth import Principal
from gateway.runtime import commands
from stores.groups import Group
from streams.envelope import utcnow
from streams.errors import FieldError, Forbidden, InvalidInput, NotFound
from streams.events.groups import GroupCreated, GroupMemberAdded, GroupMemberRemoved

routes = web.RouteTableDef()
WAITED: dict[int, tuple[str, None]] = {
    401: ("Not signed in", None),
    503: ("No worker confirmed in time; the change will still be applied", None),
}


async def _visible(request: web.Request, principal: Principal) -> Group:
    """The group in the path if the caller may see it; 404 otherwise."""
    return await visible_group(request, principal, request.match_info["id"])


@routes.post("/v1/groups")
@operation(
    "Create a group to share files with; you are its owner and first member",
    tags=("groups",),
    auth=True,
    body=GroupBody,
    responses={
        201: ("Created", GroupOut),
        409: ("You own as many groups as allowed (GROUP_LIMIT_REACHED)", None),
        422: ("Invalid fields", None),
        **WAITED,
    },
)
async def create_group(request: web.Request) -> web.Response:
    """Send ``group.created`` and wait until the agent decided and projected it."""
    principal = caller(request)
    body = await parse_body(request, GroupBody)
    created = GroupCreated(group_id=f"grp_{uuid.uuid4().hex}", name=body.name,
                           owner_id=principal.user_id, created_at=utcnow())
    result = await commands.ask(request, created)
    return web.json_response(result, status=201,
                             headers={"Location": f"/v1/groups/{created.group_id}"})


@routes.get("/v1/groups")
@operation(
    "The groups you own or belong to, oldest first",
    tags=("groups",),
    auth=True,
    responses={200: ("Groups", GroupsOut), 401: ("Not signed in", None)},
)
async def list_groups(request: web.Request) -> web.Response:
    """Every group the caller is a member of (owned ones included)."""
    principal = caller(request)
    groups = await request.app[GROUPS].of_user(principal.user_id)
    return web.json_response({"data": [group.to_json() for group in groups]})


@routes.get("/v1/groups/{id}")
@operation(
    "A group you belong to",
    tags=("groups",),
    auth=True,
    responses={200: ("The group", GroupOut), 401: ("Not signed in", None),
               404: ("No such group, or not one you belong to", None)},
)
async def get_group(request: web.Request) -> web.Response:
    """The group in the path, for its members (and admins)."""
    group = await _visible(request, caller(request))
    return web.json_response(group.to_json())


@routes.post("/v1/groups/{id}/members")
@operation(
    "Add a member (the group's owner)",
    tags=("groups",),
    auth=True,
    body=MemberBody,
    responses={
        201: ("Added; the group as it is now", GroupOut),
        403: ("A member who is not the owner", None),
        404: ("No such group, or not one you belong to", None),
        409: ("A member already (ALREADY_MEMBER), or the group is full (GROUP_FULL)", None),
        422: ("Invalid fields", None),
        **WAITED,
    },
)
async def add_member(request: web.Request) -> web.Response:
    """Send ``group.member_added`` and wait until it is projected."""
    principal = caller(request)
    group = await _visible(request, principal)
    if principal.user_id != group.owner_id:
        raise Forbidden("only the group's owner adds members")
    body = await parse_body(request, MemberBody)
    added = GroupMemberAdded(group_id=group.group_id, owner_id=group.owner_id,
                             user_id=body.user_id,
                             added_by=principal.user_id, added_at=utcnow())
    result = await commands.ask(request, added)
    return web.json_response(result, status=201)


@routes.delete("/v1/groups/{id}/members/{userId}")
@operation(
    "Remove a member (the owner), or leave (the member); their access through the group ends",
    tags=("groups",),
    auth=True,
    responses={
        204: ("Removed", None),
        403: ("Neither the owner nor the member leaving", None),
        404: ("No such group or member, or not a group you belong to", None),
        422: ("The owner cannot leave their own group", None),
        **WAITED,
    },
)
async def remove_member(request: web.Request) -> web.Response:
    """Send ``group.member_removed`` and wait until it is projected."""
    principal = caller(request)
    group = await _visible(request, principal)
    user_id = request.match_info["userId"]
    if principal.user_id not in (group.owner_id, user_id):
        raise Forbidden("only the group's owner, or the member leaving, may do this")
    if user_id == group.owner_id:
        raise InvalidInput("the owner cannot leave their own group",
                           errors=[FieldError("userId", "is the group's owner")])
    if user_id not in group.members:
        raise NotFound("the user is not a member of this group")
    removed = GroupMemberRemoved(group_id=group.group_id, owner_id=group.owner_id,
                                 user_id=user_id,
                                 removed_by=principal.user_id, removed_at=utcnow())
    await commands.ask(request, removed)
    return web.Response(status=204)
