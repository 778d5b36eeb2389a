"""``GET /v1/presence?channel=product:ID``: how many people view a product right now."""

from __future__ import annotations

from aiohttp import web

from gateway.docs.openapi import operation
from gateway.http.responses import Out
from gateway.push.channels import INVALID_CHANNEL, parse_channel
from gateway.push.keys import PRESENCE
from streams.errors import InvalidInput

routes = web.RouteTableDef()


class PresenceOut(Out):
    """The distinct viewers of one product channel, over every gateway."""

    channel: str
    count: int


@routes.get("/v1/presence")
@operation(
    "Distinct viewers of a product channel now, across every gateway (public)",
    tags=("push",),
    parameters=(
        {"name": "channel", "in": "query", "required": True,
         "description": "A product channel, `product:{productId}`.",
         "schema": {"type": "string"}},
    ),
    responses={
        200: ("The count (a user on two gateways counts twice)", PresenceOut),
        422: ("Not a product channel (INVALID_CHANNEL)", None),
        503: ("Redis, which holds the counts, did not answer (SERVICE_UNAVAILABLE)", None),
    },
)
async def presence(request: web.Request) -> web.Response:
    """Public, like the product it counts the viewers of; never cached (it is live)."""
    channel = parse_channel(request.query.get("channel"))
    if channel.kind != "product" or channel.ident is None:
        raise InvalidInput("presence is counted for product:{productId} channels only",
                           code=INVALID_CHANNEL)
    count = await request.app[PRESENCE].store.total(channel.name)
    return web.json_response({"channel": channel.name, "count": count})
