"""Who may see a group: its members (the owner is one) and admins; anyone else gets 404."""

from __future__ import annotations

from aiohttp import web

from gateway.groups.keys import GROUPS
from gateway.identity.auth import Principal
from stores.groups import Group
from streams.errors import NotFound


async def visible_group(request: web.Request, principal: Principal, group_id: str) -> Group:
    """The group ``group_id`` if ``principal`` may see it; 404 otherwise."""
    group = await request.app[GROUPS].get(group_id)
    # A stranger's group is as missing as a missing one: they cannot tell which it is.
    if group is None or (principal.user_id not in group.members and not principal.is_admin):
        raise NotFound("no such group")
    return group
