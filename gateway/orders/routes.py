"""/v1/orders: place (idempotent), read, list and cancel orders; the saga does the work."""

from __future__ import annotations

import uuid
from typing import Any, get_args

from aiohttp import web

from gateway import keys
from gateway.docs.openapi import operation
from gateway.http import fields
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from gateway.http.validation import parse_body
from gateway.identity.auth import require_scope
from gateway.orders.idempotency import HEADER, body_hash, idempotency_key
from gateway.orders.keys import IDEMPOTENCY, ORDER_PRODUCTS, ORDERS
from gateway.orders.ordering import price, request_saga, visible_order
from gateway.orders.schemas import OrderAcceptedOut, OrderBody, OrderOut, OrderPageOut
from gateway.runtime.commands import new_deadline
from stores.orders import order_json
from streams.errors import Conflict, FieldError, Forbidden, InvalidInput
from streams.events.orders import OrderStatus
from streams.events.saga import OrderCancelRequested, OrderRequested

routes = web.RouteTableDef()
STATUSES = frozenset(get_args(OrderStatus))
NOT_CANCELLABLE = frozenset({"rejected", "payment_failed", "cancelled", "refunded"})
ORDER_ANSWER = fields.answer(OrderOut, fields.sparse(OrderOut))
ORDER_PAGE_ANSWER = fields.page_answer(OrderPageOut, OrderOut)
UNAVAILABLE = "No worker answered in time; retry with the same Idempotency-Key (Retry-After)"


def _accepted(result: dict[str, Any]) -> web.Response:
    order_id = str(result["orderId"])
    return web.json_response({"orderId": order_id, "status": result["status"]}, status=202,
                             headers={"Location": f"/v1/orders/{order_id}"})


@routes.post("/v1/orders")
@operation(
    "Place an order (Idempotency-Key header required); the saga reserves, charges, delivers",
    tags=("orders",), auth=True, body=OrderBody,
    parameters=({"name": HEADER, "in": "header", "required": True,
                 "schema": {"type": "string", "maxLength": 255}},),
    responses={
        202: ("Accepted: the order exists (status pending, or its current status on a replay)",
              OrderAcceptedOut),
        400: ("Idempotency-Key missing (IDEMPOTENCY_KEY_REQUIRED)", None),
        401: ("Not signed in", None),
        403: ("Not a buyer", None),
        422: ("Invalid body, unknown or archived products, MIXED_CURRENCIES, or "
              "IDEMPOTENCY_KEY_REUSED with another body", None),
        503: (UNAVAILABLE, None),
    },
)
async def place(request: web.Request) -> web.Response:
    """Claim the key, price the lines, send ``order.requested`` and wait for the saga."""
    principal = require_scope(request, "orders:write")
    key = idempotency_key(request)
    body = await parse_body(request, OrderBody)
    app = request.app
    lines, total, currency = await price(
        app[ORDER_PRODUCTS], [(item.product_id, item.quantity) for item in body.items]
    )
    # Claimed after validation, so a refused body does not burn the key.
    order_id = await app[IDEMPOTENCY].claim(
        principal.user_id, key, body_hash(body.model_dump(mode="json")), str(uuid.uuid4())
    )
    result = await request_saga(request, OrderRequested(
        order_id=order_id, buyer_id=principal.user_id, items=lines, total=total,
        currency=currency, payment_method=body.payment_method, idempotency_key=key,
        reply_to=app[keys.COMMANDS].instance_id, deadline=new_deadline(app[keys.SETTINGS]),
    ))
    return _accepted(result)


@routes.get("/v1/orders/{id}")
@operation(
    "An order (its buyer, a seller of one of its items, or an admin)",
    tags=("orders",), auth=True,
    parameters=(fields.parameter(OrderOut),),
    responses={200: ("The order (trimmed by ?fields=)", ORDER_ANSWER),
               401: ("Not signed in", None),
               404: ("No such order, or not yours to see", None)},
)
async def get_order(request: web.Request) -> web.Response:
    """Read the order from the read model."""
    principal = require_scope(request, "orders:read")
    names = fields.requested(request, OrderOut)
    doc = await visible_order(request, principal, request.match_info["id"])
    return web.json_response(fields.select(order_json(doc), names))


@routes.get("/v1/orders")
@operation(
    "The caller's orders as buyer (default) or seller, newest first",
    tags=("orders",), auth=True,
    parameters=(
        {"name": "as", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["buyer", "seller"], "default": "buyer"}},
        {"name": "status", "in": "query", "required": False,
         "schema": {"type": "string", "enum": sorted(STATUSES)}},
        *PAGE_PARAMETERS,
        fields.parameter(OrderOut),
    ),
    responses={200: ("A page of orders (each trimmed by ?fields=)", ORDER_PAGE_ANSWER),
               401: ("Not signed in", None),
               422: ("Invalid query", None)},
)
async def list_orders(request: web.Request) -> web.Response:
    """Page through the caller's orders."""
    principal = require_scope(request, "orders:read")
    names = fields.requested(request, OrderOut)
    role = request.query.get("as", "buyer")
    status = request.query.get("status")
    errors = []
    if role not in ("buyer", "seller"):
        errors.append(FieldError("as", "must be buyer or seller"))
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", f"must be one of {sorted(STATUSES)}"))
    if errors:
        raise InvalidInput("the query has invalid parameters", errors=errors)
    page = page_request(request, arity=2)
    rows = await request.app[ORDERS].page(
        principal.user_id, role="seller" if role == "seller" else "buyer", limit=page.fetch,
        status=status, after=page.after,
    )
    body = page_response(rows, page, position=lambda d: (d["createdAt"], d["_id"]),
                         render=order_json)
    return web.json_response(fields.select_page(body, names))


@routes.post("/v1/orders/{id}/cancel")
@operation(
    "Cancel an order (buyer or admin); refunds when already paid",
    tags=("orders",), auth=True,
    responses={
        202: ("Accepted: cancelled, or a refund is under way", OrderAcceptedOut),
        401: ("Not signed in", None), 403: ("A seller of the order, not its buyer", None),
        404: ("No such order, or not yours to see", None),
        409: ("Already ended (ORDER_NOT_CANCELLABLE)", None), 503: (UNAVAILABLE, None),
    },
)
async def cancel(request: web.Request) -> web.Response:
    """Send ``order.cancel_requested`` and wait for the saga's answer."""
    principal = require_scope(request, "orders:read")
    doc = await visible_order(request, principal, request.match_info["id"])
    if doc["buyerId"] != principal.user_id and not principal.is_admin:
        raise Forbidden("only the buyer or an admin may cancel an order")
    if doc["status"] in NOT_CANCELLABLE:
        raise Conflict(f"the order is already {doc['status']}", code="ORDER_NOT_CANCELLABLE")
    app = request.app
    result = await request_saga(request, OrderCancelRequested(
        order_id=doc["_id"], requested_by=principal.user_id,
        reason="cancelled by an admin" if doc["buyerId"] != principal.user_id
        else "cancelled by buyer",
        reply_to=app[keys.COMMANDS].instance_id, deadline=new_deadline(app[keys.SETTINGS]),
    ))
    return _accepted(result)
