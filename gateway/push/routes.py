"""The push endpoints' route table and the stream-ticket handler."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.docs.openapi import operation
from gateway.identity.auth import authenticate
from gateway.keys import TOKENS
from gateway.push.sse import events
from gateway.push.ws import websocket


class TicketOut(BaseModel):
    """A stream ticket."""

    model_config = ConfigDict(populate_by_name=True)

    ticket: str
    expiresIn: int


@operation(
    "A short-lived ticket for ?token= on /v1/ws and /v1/events",
    tags=("push",),
    auth=True,
    responses={201: ("Ticket (60 s)", TicketOut), 401: ("Not signed in", None),
               403: ("Token lacks the stream scope", None)},
)
async def stream_ticket(request: web.Request) -> web.Response:
    """``POST /v1/stream-tickets``: a 60-second ``?token=`` for EventSource/WebSocket clients."""
    tokens = request.app[TOKENS]
    # Bearer only: a ticket must not mint further tickets.
    principal = authenticate(request, tokens, allow_ticket=False)
    principal.require("stream")
    ticket, ttl = tokens.issue_stream_ticket(principal)
    return web.json_response({"ticket": ticket, "expiresIn": ttl}, status=201)


def routes() -> list[web.RouteDef]:
    """Every push route."""
    return [
        # No HEAD: a stream's answer has no head-only form (aiohttp would add one).
        web.get("/v1/ws", websocket, name="push-ws", allow_head=False),
        web.get("/v1/events", events, name="push-events", allow_head=False),
        web.post("/v1/stream-tickets", stream_ticket, name="stream-tickets"),
    ]
