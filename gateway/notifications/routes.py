"""/v1/notifications: the caller's in-app notifications (changes go through the agent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import keys
from gateway.docs.openapi import operation
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from gateway.http.responses import Out, PaginationOut
from gateway.http.validation import query_flag
from gateway.identity.auth import authenticate
from gateway.notifications.keys import NOTIFICATIONS
from gateway.runtime import commands
from gateway.runtime.commands import new_deadline
from stores.notifications import Notification
from streams.errors import InvalidCursor
from streams.events.notifications import (
    NotificationCommand,
    NotificationDeleteRequested,
    NotificationReadAllRequested,
    NotificationReadRequested,
)

routes = web.RouteTableDef()


class NotificationOut(Out):
    """An in-app notification."""

    notification_id: str
    type: str
    title: str
    body: str
    read: bool
    created_at: str


class UnreadCountOut(Out):
    """How many of the caller's notifications are unread."""

    unread: int


class NotificationPage(Out):
    """A page of notifications, newest first."""

    data: list[NotificationOut]
    pagination: PaginationOut


@routes.get("/v1/notifications")
@operation(
    "The caller's notifications, newest first",
    tags=("notifications",),
    auth=True,
    parameters=(
        *PAGE_PARAMETERS,
        {"name": "unread", "in": "query", "required": False, "schema": {"type": "boolean"}},
    ),
    responses={
        200: ("A page", NotificationPage),
        400: ("Bad cursor (INVALID_CURSOR)", None),
        401: ("Not signed in", None),
        422: ("Bad limit", None),
    },
)
async def list_notifications(request: web.Request) -> web.Response:
    """Read straight from the read model."""
    principal = authenticate(request, request.app[keys.TOKENS])
    page = page_request(request, arity=2)
    after = None
    if page.after is not None:
        if not isinstance(page.after[0], datetime):
            raise InvalidCursor("the cursor is not valid; start again without one")
        after = (page.after[0], str(page.after[1]))
    unread = query_flag(request, "unread")
    rows = await request.app[NOTIFICATIONS].page(
        principal.user_id, limit=page.fetch, unread_only=unread, after=after
    )
    return web.json_response(
        page_response(
            rows,
            page,
            position=lambda n: (n.created_at, n.notification_id),
            render=Notification.to_json,
        )
    )


@routes.get("/v1/notifications/unread-count")
@operation(
    "How many of the caller's notifications are unread (also pushed on user:{id} as "
    "notification.unread_changed)",
    tags=("notifications",),
    auth=True,
    responses={200: ("The count", UnreadCountOut), 401: ("Not signed in", None)},
)
async def unread_count(request: web.Request) -> web.Response:
    """Counted in the read model, the same documents the pushed count is counted from."""
    principal = authenticate(request, request.app[keys.TOKENS])
    unread = await request.app[NOTIFICATIONS].unread_count(principal.user_id)
    return web.json_response({"unread": unread})


async def _command(
    request: web.Request,
    model: type[NotificationCommand] | type[NotificationReadAllRequested],
) -> web.Response:
    principal = authenticate(request, request.app[keys.TOKENS])
    fields: dict[str, Any] = {
        "user_id": principal.user_id,
        "deadline": new_deadline(request.app[keys.SETTINGS]),
        "reply_to": request.app[keys.COMMANDS].instance_id,
    }
    if issubclass(model, NotificationCommand):
        fields["notification_id"] = request.match_info["id"]
    await commands.ask(request, model(**fields))
    return web.Response(status=204)


_CHANGE_RESPONSES: dict[int, tuple[str, type[BaseModel] | None]] = {
    204: ("Done", None),
    401: ("Not signed in", None),
    404: ("No such notification of yours", None),
    503: ("No worker answered in time; nothing was applied (Retry-After)", None),
}


@routes.post("/v1/notifications/read-all")
@operation(
    "Mark every notification of the caller read (those created up to the request; "
    "the new count, 0, is pushed on user:{id})",
    tags=("notifications",),
    auth=True,
    responses={
        204: ("Done", None),
        401: ("Not signed in", None),
        429: ("Too many requests (RATE_LIMITED, Retry-After)", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def mark_all_read(request: web.Request) -> web.Response:
    """Ask the notifications agent to mark them all read, in order with the user's others."""
    return await _command(request, NotificationReadAllRequested)


@routes.post("/v1/notifications/{id}/read")
@operation(
    "Mark a notification read", tags=("notifications",), auth=True, responses=_CHANGE_RESPONSES
)
async def mark_read(request: web.Request) -> web.Response:
    """Ask the notifications agent to mark it read."""
    return await _command(request, NotificationReadRequested)


@routes.delete("/v1/notifications/{id}")
@operation(
    "Delete a notification", tags=("notifications",), auth=True, responses=_CHANGE_RESPONSES
)
async def delete(request: web.Request) -> web.Response:
    """Ask the notifications agent to delete it."""
    return await _command(request, NotificationDeleteRequested)
