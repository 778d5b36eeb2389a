"""PATCH /v1/products/{id}/stock: a seller (or an admin) changes a product's stock.

The inventory agent owns the stock (its table is the source of truth), so the
change is a command answered over ``replies``; the gateway only checks who may ask.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StrictInt, field_validator

from gateway import keys
from gateway.catalog.keys import PRODUCTS
from gateway.docs.openapi import operation
from gateway.http.responses import Out
from gateway.http.validation import Body, parse_body
from gateway.identity.auth import authenticate
from gateway.runtime import commands
from gateway.runtime.commands import new_deadline
from streams.errors import Forbidden, NotFound
from streams.events.inventory import AdjustRequested

routes = web.RouteTableDef()
# One change moves at most this many units: a typo must not create a billion units.
MAX_CHANGE = 1_000_000


class StockBody(Body):
    """PATCH /v1/products/{id}/stock."""

    quantity_change: Annotated[
        StrictInt,
        # The validator below refuses 0; the schema says so too (clients generate from it).
        Field(ge=-MAX_CHANGE, le=MAX_CHANGE, json_schema_extra={"not": {"const": 0}}),
    ]

    @field_validator("quantity_change")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be zero")
        return value


class StockOut(Out):
    """The stock after the change."""

    product_id: str
    current_stock: int


@routes.patch("/v1/products/{id}/stock")
@operation(
    "Change a product's stock by quantityChange (owner or admin); never below zero",
    tags=("products",),
    auth=True,
    body=StockBody,
    responses={
        200: ("The stock after the change", StockOut),
        401: ("Not signed in", None),
        403: ("Not the product's seller, nor an admin", None),
        404: ("No such product", None),
        409: ("INSUFFICIENT_STOCK: the change would take the stock below zero", None),
        422: ("Invalid fields (quantityChange missing, zero or not an integer)", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def change_stock(request: web.Request) -> web.Response:
    """Send the adjustment to the inventory agent and answer with the new level."""
    principal = authenticate(request, request.app[keys.TOKENS])
    principal.require("products:write")
    product_id = request.match_info["id"]
    body = await parse_body(request, StockBody)
    seller_id = await request.app[PRODUCTS].seller_of(product_id)
    if seller_id is None:
        raise NotFound("no such product")
    if seller_id != principal.user_id and not principal.is_admin:
        raise Forbidden("only the product's seller or an admin may change its stock")
    result = await commands.ask(
        request,
        AdjustRequested(
            product_id=product_id,
            quantity_change=body.quantity_change,
            requested_by=principal.user_id,
            reply_to=request.app[keys.COMMANDS].instance_id,
            deadline=new_deadline(request.app[keys.SETTINGS]),
        ),
    )
    out = StockOut(product_id=product_id, current_stock=int(result["currentStock"]))
    return web.json_response(out.model_dump(by_alias=True))
