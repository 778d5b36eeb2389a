"""Who may see and manage a file, and how the files routes publish their facts.

Callers who may not know a file exists get 404, never 403: a stranger cannot
tell a private file from a missing one. Readers are the owner, admins,
active grantees (a purchase is a grant with ``source: "purchase"``) and the
current members of a group the file is granted to: membership is read on
every request, so a member removed from the group is refused on the next one.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from gateway import keys
from gateway.files.keys import FILES
from gateway.groups.keys import GROUPS
from gateway.identity.auth import Principal, authenticate
from gateway.runtime import commands
from stores.files import FileMeta
from streams.errors import Forbidden, NotFound
from streams.registry import Command, Payload

FILES_SCOPE = "files"


class ProductOwnership(Protocol):
    """Whether ``principal`` may attach files to product ``product_id``."""

    async def __call__(self, principal: Principal, product_id: str) -> bool: ...


def caller(request: web.Request) -> Principal:
    """The authenticated caller, who must hold the ``files`` scope."""
    principal = authenticate(request, request.app[keys.TOKENS])
    principal.require(FILES_SCOPE)
    return principal


async def readable(request: web.Request, principal: Principal, file_id: str) -> FileMeta:
    """The metadata of a live file ``principal`` may read; ``NotFound`` otherwise."""
    meta = await request.app[FILES].get(file_id)
    if meta is None or meta.deleted:
        raise NotFound("no such file")
    if meta.owner_id == principal.user_id or principal.is_admin:
        return meta
    if await request.app[FILES].grant_of(file_id, principal.user_id) is not None:
        return meta
    groups = [grant.group_id for grant in await request.app[FILES].group_grants(file_id)]
    if not await request.app[GROUPS].any_has_member(groups, principal.user_id):
        raise NotFound("no such file")
    return meta


async def managed(request: web.Request, principal: Principal, file_id: str) -> FileMeta:
    """A live file ``principal`` owns or administers; 403 for mere readers, 404 for others."""
    meta = await readable(request, principal, file_id)
    if meta.owner_id != principal.user_id and not principal.is_admin:
        raise Forbidden("only the file's owner or an admin may do this")
    return meta


async def publish_and_wait(request: web.Request, payload: Command) -> dict[str, Any]:
    """Publish a file fact and wait (bounded) until the files agent has projected it."""
    return await commands.ask(request, payload)


async def publish(request: web.Request, payload: Payload) -> None:
    """Publish a fact nobody waits for (downloads); a broker outage only loses analytics."""
    await commands.publish(request, payload)
