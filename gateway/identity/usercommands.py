"""Commands to the users agent: the fields each one needs, and the profile cache they change."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import keys
from gateway.identity.keys import PROFILES
from gateway.runtime import commands
from gateway.runtime.commands import new_deadline
from streams.events.users import UserCommand


def common_fields(request: web.Request, *, actor_id: str | None) -> dict[str, Any]:
    """Deadline, reply address and actor every user command needs."""
    return {
        "actor_id": actor_id,
        "deadline": new_deadline(request.app[keys.SETTINGS]),
        "reply_to": request.app[keys.COMMANDS].instance_id,
    }


async def apply(request: web.Request, payload: UserCommand) -> dict[str, Any]:
    """Send ``payload`` and wait for the users agent; the updated profile, or a domain error."""
    try:
        return await commands.ask(request, payload)
    finally:
        # Whatever the answer, the cached profile may be stale now (even a command that
        # timed out may still be applied): the next read goes to the read model.
        request.app[PROFILES].invalidate(payload.user_id)
