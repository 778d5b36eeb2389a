"""/v1/analytics/dashboard and /v1/analytics/reports: the analytics read models.

Who sees what: an admin the whole marketplace or, with ``?sellerId=``, one seller; a
seller only their own products (another seller's id is a 403); nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast, get_args

from aiohttp import web
from pydantic import Field
from redis.exceptions import RedisError

from agents.analytics import snapshot
from agents.analytics.facts import scope_key
from gateway import keys
from gateway.analytics.event_routes import YEARS, parse_instant
from gateway.analytics.reports import GroupBy, group, to_csv
from gateway.docs.openapi import operation
from gateway.http.responses import Out
from gateway.identity.auth import Principal, authenticate
from gateway.push.keys import PRESENCE
from stores.analytics import AnalyticsRepository
from stores.presence import ALL
from streams.envelope import format_time, utcnow
from streams.errors import FieldError, Forbidden, InvalidInput
from streams.events.analytics import CurrencyAmount, DashboardSnapshot

routes = web.RouteTableDef()
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
MAX_REPORT_DAYS = 31
PRESENCE_WAIT = 1.0  # seconds the dashboard waits for the live viewers before leaving them out
SELLER_PARAMETER = {
    "name": "sellerId", "in": "query", "required": False,
    "description": "Admins: one seller's numbers (default: the whole marketplace). Sellers: "
                   "only their own id.",
    "schema": {"type": "string", "pattern": _ID.pattern},
}


def _seller_scope(request: web.Request) -> tuple[Principal, str | None]:
    """The seller whose numbers the caller asks for (None: the marketplace), if allowed."""
    principal = authenticate(request, request.app[keys.TOKENS])
    wanted = request.query.get("sellerId")
    if wanted is not None and not _ID.match(wanted):
        raise InvalidInput("the query has invalid parameters",
                           errors=[FieldError("sellerId", "not a valid id")])
    if "dashboard" in principal.scopes:
        return principal, wanted
    principal.require("dashboard:own")
    if wanted is not None and wanted != principal.user_id:
        raise Forbidden("sellers see only their own analytics", code="FORBIDDEN")
    return principal, principal.user_id


class DashboardAnswer(DashboardSnapshot):
    """The stored snapshot, and the marketplace's live viewers when it is the marketplace's."""

    viewers_now: int | None = Field(
        default=None,
        description="Marketplace scope only: distinct signed-in users following any "
        "product:{id} channel now, summed over the gateways (GET /v1/presence's counts). "
        "Not in pushed snapshots; absent while Redis is away.")


@routes.get("/v1/analytics/dashboard")
@operation(
    "The live dashboard snapshot (admin: the marketplace or ?sellerId=; seller: their own)",
    tags=("analytics",), auth=True, parameters=(SELLER_PARAMETER,),
    responses={
        200: ("The snapshot, as pushed on dashboard / dashboard:{sellerId} (and viewersNow)",
              DashboardAnswer),
        403: ("Not an admin or seller (INSUFFICIENT_SCOPE), or another seller's (FORBIDDEN)",
              None),
        422: ("sellerId is not a valid id (VALIDATION_ERROR)", None),
    },
)
async def dashboard(request: web.Request) -> web.Response:
    """The scope's last snapshot; an empty one before its first event."""
    _, seller = _seller_scope(request)
    stored = await AnalyticsRepository(request.app[keys.MONGO_DB]).snapshot(scope_key(seller))
    if stored is None:
        now = int(utcnow().timestamp() * 1000)
        stored = snapshot.build(seller, now_ms=now, day=None, minutes={}, visitors=[],
                                name_of=lambda _: None)
    presence = request.app.get(PRESENCE)
    if seller is None and presence is not None:
        # Live viewers are not the snapshot's visitorsNow (sessions seen in the last five
        # minutes); an outage of Redis must not take the MongoDB-backed dashboard down.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(PRESENCE_WAIT):
                stored = {**stored, "viewersNow": await presence.store.total(ALL)}
    return web.json_response(stored)


class ReportRowOut(Out):
    """One row: its key (day, productId or sellerId) and its additive metrics."""

    day: str | None = None
    product_id: str | None = None
    seller_id: str | None = None
    orders: int
    units: int
    product_views: int
    revenue: list[CurrencyAmount]
    refunds: list[CurrencyAmount]
    net_revenue: list[CurrencyAmount]
    average_order_value: list[CurrencyAmount] | None = None
    refunded_orders: int | None = None
    registrations: int | None = None
    uploads: int | None = None
    searches: int | None = None
    checkouts: int | None = None
    payments_failed: int | None = None
    late_events: int | None = Field(
        default=None, description="Events that arrived later than the grace: not counted.")


class ReportOut(Out):
    """A report over the closed one-minute windows in [from, to) (read as days and hours
    where whole ones are closed: the same sums)."""

    from_: str = Field(alias="from")
    to: str
    group_by: str
    seller_id: str | None
    data: list[ReportRowOut]


def _instant(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if raw is None:
        return default
    moment = parse_instant(f"{raw}T00:00:00+00:00" if len(raw) == 10 else raw)
    if moment is None:
        raise InvalidInput("the query has invalid parameters", errors=[FieldError(
            name, f"an RFC 3339 time with an offset, or a date (YYYY-MM-DD), in "
                  f"{YEARS[0]}-{YEARS[1]}")])
    return moment


@routes.get("/v1/analytics/reports")
@operation(
    "Reports from closed windows, by UTC day, product or seller (JSON, or CSV with "
    "Accept: text/csv)",
    tags=("analytics",), auth=True,
    parameters=(
        {"name": "from", "in": "query", "required": False,
         "description": "Start (RFC 3339 or YYYY-MM-DD); default today 00:00 UTC.",
         "schema": {"type": "string"}},
        {"name": "to", "in": "query", "required": False,
         "description": "End, exclusive; default one day after from; at most 31 days later.",
         "schema": {"type": "string"}},
        {"name": "groupBy", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(get_args(GroupBy)), "default": "day"}},
        SELLER_PARAMETER,
    ),
    responses={
        200: ("The rows (text/csv too: one column per metric and currency)", ReportOut),
        403: ("Not an admin or seller (INSUFFICIENT_SCOPE), or another seller's (FORBIDDEN)",
              None),
        422: ("Invalid parameters (VALIDATION_ERROR): from, to, groupBy or sellerId, named",
              None),
    },
    content={200: {"text/csv": {}}},
)
async def reports(request: web.Request) -> web.Response:
    """Sum the closed minute windows of the caller's scope(s) in the range (as the
    coarsest closed windows that tile it)."""
    principal, seller = _seller_scope(request)
    by = request.query.get("groupBy", "day")
    if by not in get_args(GroupBy):
        raise InvalidInput("the query has invalid parameters",
                           errors=[FieldError("groupBy", "one of day, product, seller")])
    today = datetime.combine(utcnow().date(), time(), UTC)
    start = _instant(request, "from", today)
    end = _instant(request, "to", start + timedelta(days=1))
    if not start < end <= start + timedelta(days=MAX_REPORT_DAYS):
        raise InvalidInput("the query has invalid parameters", errors=[FieldError(
            "to", f"must be after from, by at most {MAX_REPORT_DAYS} days")])
    repo = AnalyticsRepository(request.app[keys.MONGO_DB])
    admin_all_sellers = by == "seller" and seller is None and "dashboard" in principal.scopes
    scopes = None if admin_all_sellers else [scope_key(seller)]
    docs = await repo.report_windows(
        start=start, end=end, scopes=scopes, sellers_only=admin_all_sellers)
    rows = group(docs, cast(GroupBy, by))
    if "text/csv" in request.headers.get("Accept", ""):
        return web.Response(text=to_csv(rows, cast(GroupBy, by)), content_type="text/csv")
    body: dict[str, Any] = {"from": format_time(start), "to": format_time(end), "groupBy": by,
                            "sellerId": seller, "data": rows}
    return web.json_response(body)
