"""/v1/admin/orders: every order for admins, the stuck ones, and re-driving a stuck saga.

Stuck (``agents.saga.recovery``): past an armed step deadline, or with a failed refund.
The list, and a retry's first check, read the orders read model; a retry then goes
through the saga's inbox like any command, and the saga decides again on its own state,
so an order the read model still shows as stuck a message late gets its 409 from the saga.
"""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.docs.openapi import operation
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from gateway.http.responses import Out, PaginationOut
from gateway.http.validation import query_flag
from gateway.identity.auth import Principal, require_scope
from gateway.orders.keys import ORDERS
from gateway.orders.ordering import request_saga
from gateway.orders.schemas import OrderAcceptedOut, OrderOut
from gateway.runtime.commands import new_deadline
from stores.orders import order_json, stuck_reason
from streams.envelope import format_time, utcnow
from streams.errors import Conflict, NotFound
from streams.events.saga import OrderRetryRequested

routes = web.RouteTableDef()
UNAVAILABLE = "No worker answered in time (WORKER_UNAVAILABLE, Retry-After); retrying is safe"
RATE_LIMITED = "Too many requests (RATE_LIMITED, Retry-After)"
NOT_ADMIN = "Signed in, but not an admin (FORBIDDEN)"


class DeadlineOut(Out):
    """What the saga awaits and until when."""

    step: str
    at: str


class AdminOrderOut(OrderOut):
    """An order as admins see it: with its saga's deadline and whether it is stuck."""

    deadline: DeadlineOut | None = None
    stuck: str | None = None


class AdminOrderPageOut(Out):
    """A page of orders, newest first."""

    data: list[AdminOrderOut]
    pagination: PaginationOut


def _admin(request: web.Request) -> Principal:
    return require_scope(request, "orders:admin")


@routes.get("/v1/admin/orders")
@operation(
    "Every order (admin), newest first; ?stuck=true: only those past their saga deadline "
    "or with a failed refund",
    tags=("orders", "admin"), auth=True,
    parameters=(
        {"name": "stuck", "in": "query", "required": False,
         "description": "true: only stuck orders (past a deadline, or a failed refund).",
         "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}},
        *PAGE_PARAMETERS,
    ),
    responses={
        200: ("A page of orders", AdminOrderPageOut),
        400: ("Bad cursor (INVALID_CURSOR)", None),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        422: ("Invalid query (stuck, limit)", None),
        429: (RATE_LIMITED, None),
    },
)
async def admin_list_orders(request: web.Request) -> web.Response:
    """Page through all orders, or the stuck ones."""
    _admin(request)
    stuck = query_flag(request, "stuck")
    page = page_request(request, arity=2)
    now = utcnow()
    rows = await request.app[ORDERS].admin_page(
        limit=page.fetch, stuck_at=now if stuck else None, after=page.after)

    def render(doc: dict[str, object]) -> dict[str, object]:
        deadline = doc.get("deadline")
        return {
            **order_json(doc),
            "deadline": None if not isinstance(deadline, dict) else {
                "step": deadline["step"], "at": format_time(deadline["at"])},
            "stuck": stuck_reason(doc, now),
        }

    body = page_response(rows, page, position=lambda d: (d["createdAt"], d["_id"]),
                         render=render)
    return web.json_response(body)


@routes.post("/v1/admin/orders/{id}/retry")
@operation(
    "Re-drive a stuck order's saga (admin): a failed or overdue refund is sent again now "
    "(same idempotency key); another passed deadline is applied as its timer would",
    tags=("orders", "admin"), auth=True,
    responses={
        202: ("Accepted: the saga re-drove its current step", OrderAcceptedOut),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        404: ("No such order (NOT_FOUND)", None),
        409: ("The order is not stuck (ORDER_NOT_STUCK)", None),
        429: (RATE_LIMITED, None),
        503: (UNAVAILABLE, None),
    },
)
async def admin_retry_order(request: web.Request) -> web.Response:
    """Send ``order.retry_requested`` and wait for the saga's answer."""
    principal = _admin(request)
    app = request.app
    doc = await app[ORDERS].get(request.match_info["id"])
    if doc is None:
        raise NotFound("no such order")
    if stuck_reason(doc, utcnow()) is None:
        raise Conflict("the order is not stuck: it is past no deadline and no refund of it "
                       "failed", code="ORDER_NOT_STUCK")
    result = await request_saga(request, OrderRetryRequested(
        order_id=doc["_id"], requested_by=principal.user_id,
        reply_to=app[keys.COMMANDS].instance_id, deadline=new_deadline(app[keys.SETTINGS]),
    ))
    order_id = str(result["orderId"])
    return web.json_response({"orderId": order_id, "status": result["status"]}, status=202,
                             headers={"Location": f"/v1/orders/{order_id}"})
