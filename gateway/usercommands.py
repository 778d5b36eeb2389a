"""Sending commands to the users agent: wait for the answer, or queue and move on."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.commands import new_deadline
from streams.envelope import Envelope, new_event
from streams.errors import Conflict, MercatoError, NotFound
from streams.events.users import UserCommand

log = logging.getLogger(__name__)
TOPIC = "user-commands"
# Rejection codes of the users agent and the domain errors they become.
REJECTIONS: dict[str, type[MercatoError]] = {"NOT_FOUND": NotFound, "VERSION_CONFLICT": Conflict}


def user_command(app: web.Application, payload: UserCommand, *, correlation_id: str) -> Envelope:
    """The envelope of ``payload``, keyed by its user so one user's commands stay in order."""
    return new_event(
        payload,
        key=payload.user_id,
        source=f"gateway/{app[keys.INSTANCE_ID]}",
        correlation_id=correlation_id,
    )


def common_fields(request: web.Request, *, actor_id: str | None) -> dict[str, Any]:
    """Deadline, reply address and actor every user command needs."""
    return {
        "actor_id": actor_id,
        "deadline": new_deadline(request.app[keys.SETTINGS]),
        "reply_to": request.app[keys.COMMANDS].instance_id,
    }


async def apply(request: web.Request, payload: UserCommand) -> dict[str, Any]:
    """Send ``payload`` and wait for the users agent; the updated profile, or a domain error."""
    command = user_command(request.app, payload, correlation_id=request[keys.REQUEST_ID])
    answer = await request.app[keys.COMMANDS].request(TOPIC, command, key=payload.user_id)
    request.app[keys.PROFILES].invalidate(payload.user_id)
    if answer.outcome == "rejected":
        error = REJECTIONS.get(answer.code or "", MercatoError)
        raise error(answer.detail or "the change was refused", code=answer.code)
    return dict(answer.result)


async def enqueue(app: web.Application, payload: UserCommand, *, correlation_id: str) -> None:
    """Send ``payload`` without waiting for an answer; a failed delivery is logged."""
    command = user_command(app, payload, correlation_id=correlation_id)
    delivery = await app[keys.PRODUCER].send(
        app[keys.SETTINGS].topic(TOPIC),
        key=payload.user_id.encode(),
        value=command.encode(),
        headers=command.headers(),
    )
    delivery.add_done_callback(_log_failure)


def _log_failure(delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.error("user command not delivered: %r", delivery.exception())
