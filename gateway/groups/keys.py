"""State of the groups domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from stores.groups import GroupRepository

# Also read by gateway.files.access: a grant to a group is checked against it per request.
GROUPS: web.AppKey[GroupRepository] = web.AppKey("groups")
