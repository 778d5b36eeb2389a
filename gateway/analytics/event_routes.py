"""POST /v1/analytics/events: client events (views, searches, checkouts, pages) to ``analytics``.

Anyone may send them: a signed-in caller is recorded as the user, an anonymous one must
name a ``sessionId``. The limiter's ``events`` class applies (gateway/http/ratelimit), one
token per event: a batch of 100 costs what 100 single events do.

Event time is the client's ``at`` but never later than now: a client clock ahead of ours
must not move the analytics watermark (it would make everyone else's events late). An
anonymous caller's ``at`` is also never more than ``ANONYMOUS_SKEW`` behind now: nobody
accountable could otherwise reopen closed windows by the hundred or fill ``lateEvents``.
A signed-in client may backfill: within the grace its events revise their windows,
beyond it they are counted late.

A refused batch's 429 and an accepted batch's 202 carry the limiter's headers as the
batch's charge left the bucket (``gateway.http.ratelimit.charge``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web
from aiokafka.errors import KafkaError
from pydantic import BaseModel, Field

from gateway import keys
from gateway.docs.openapi import operation
from gateway.http.ratelimit import charge, too_many_requests
from gateway.http.responses import Out
from gateway.http.validation import Body, parse_body
from gateway.identity.auth import Principal, authenticate, bearer_token
from gateway.orders.keys import ORDER_PRODUCTS
from streams.envelope import Envelope, new_event, utcnow
from streams.errors import FieldError, InvalidInput, Unavailable
from streams.events.analytics import (
    CheckoutStarted,
    ClientEvent,
    PageViewed,
    ProductViewed,
    Property,
    SearchPerformed,
)

routes = web.RouteTableDef()
MAX_EVENTS = 100
MAX_PROPERTIES = 32
ANONYMOUS_SKEW = timedelta(seconds=5)
MODELS: dict[str, type[ClientEvent]] = {
    "product.viewed": ProductViewed, "search.performed": SearchPerformed,
    "checkout.started": CheckoutStarted, "page.viewed": PageViewed,
}
# The property each type must carry, as a non-empty string of at most this length.
REQUIRED: dict[str, tuple[str, int]] = {
    "product.viewed": ("productId", 128), "search.performed": ("query", 200),
    "page.viewed": ("path", 500),
}


# Times outside these years are refused: near the ends of datetime's range, moving to UTC
# or adding the report's days overflows.
YEARS = (1970, 9000)


def parse_instant(raw: str) -> datetime | None:
    """An RFC 3339 time with an offset, in UTC; None if it is not one or out of ``YEARS``."""
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            return None
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if YEARS[0] <= moment.year <= YEARS[1] else None


def event_time(raw: str | None, now: datetime, earliest: datetime | None) -> datetime:
    """The time recorded for an event: its ``at`` (already checked), within [earliest, now]."""
    moment = parse_instant(raw) if raw is not None else None
    if moment is None or moment > now:
        return now
    return max(moment, earliest) if earliest is not None else moment


class ClientEventIn(Body):
    """One client event."""

    type: Literal["product.viewed", "search.performed", "checkout.started", "page.viewed"]
    at: str | None = Field(default=None, max_length=40, examples=["2026-12-01T10:00:00Z"],
                           json_schema_extra={"format": "date-time"},
                           description="When it happened (RFC 3339); default now, never later.")
    session_id: str | None = Field(default=None, min_length=1, max_length=128,
                                   pattern=r"^[A-Za-z0-9_\-.:]+$",
                                   description="Required when not signed in.")
    properties: dict[str, Property] = Field(
        default_factory=dict, max_length=MAX_PROPERTIES,
        description="productId (product.viewed), query (search.performed), path (page.viewed).")


class EventsBody(Body):
    """POST /v1/analytics/events."""

    events: list[ClientEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class AcceptedOut(Out):
    """How many events were accepted."""

    accepted: int


def _caller(request: web.Request) -> Principal | None:
    if bearer_token(request) is None:
        return None
    return authenticate(request, request.app[keys.TOKENS])


def _checked(body: EventsBody, principal: Principal | None) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, item in enumerate(body.events):
        where = f"events.{index}"
        if principal is None and item.session_id is None:
            errors.append(FieldError(f"{where}.sessionId", "required when not signed in"))
        if item.type in REQUIRED:
            name, longest = REQUIRED[item.type]
            value = item.properties.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > longest:
                errors.append(FieldError(
                    f"{where}.properties.{name}",
                    f"{item.type} needs a non-empty string of at most {longest} characters"))
        if item.at is not None and parse_instant(item.at) is None:
            errors.append(FieldError(
                f"{where}.at", f"not an RFC 3339 time with an offset in {YEARS[0]}-{YEARS[1]}"))
    return errors


@routes.post("/v1/analytics/events")
@operation(
    "Record client analytics events (anonymous allowed with a sessionId)",
    tags=("analytics",), body=EventsBody,
    parameters=({"name": "Authorization", "in": "header", "required": False,
                 "description": "Optional Bearer token: the signed-in user is recorded.",
                 "schema": {"type": "string"}},),
    responses={
        202: ("Accepted: published to the analytics stream", AcceptedOut),
        401: ("A token was sent and is not valid", None),
        422: ("Invalid events (VALIDATION_ERROR): an unknown type, a missing sessionId or "
              "property, more than 100 events; each one named", None),
        429: ("The events limit is used up (RATE_LIMITED): each event costs a token; "
              "Retry-After says when the whole batch could pass", None),
        503: ("The broker did not take the events; retry (Retry-After)", None),
    },
)
async def record(request: web.Request) -> web.Response:
    """Validate every event, resolve viewed products' sellers, publish them all."""
    principal = _caller(request)
    body = await parse_body(request, EventsBody)
    errors = _checked(body, principal)
    if errors:
        raise InvalidInput("some events are not valid", errors=errors)
    limits = request.app.get(keys.RATE_LIMITS)
    if limits is not None:
        caller = (principal, False) if principal is not None else None
        decision = await charge(request, limits, caller, len(body.events))
        if decision is not None and not decision.allowed:
            return too_many_requests(request, limits, decision)
    viewed = {str(e.properties["productId"]) for e in body.events if e.type == "product.viewed"}
    products = await request.app[ORDER_PRODUCTS].many(viewed) if viewed else {}
    now = utcnow()
    earliest = now - ANONYMOUS_SKEW if principal is None else None
    user = principal.user_id if principal is not None else None
    instance = request.app[keys.INSTANCE_ID]
    envelopes = []
    for item in body.events:
        at = event_time(item.at, now, earliest)
        fields: dict[str, object] = {
            "sessionId": item.session_id, "userId": user, "properties": item.properties}
        if item.type == "product.viewed":
            product_id = str(item.properties["productId"])
            found = products.get(product_id)
            fields |= {"productId": product_id,
                       "sellerId": found.seller_id if found is not None else None}
        payload: BaseModel = MODELS[item.type].model_validate(fields)
        key = user or item.session_id or "anonymous"
        envelopes.append(new_event(payload, key=key, source=f"gateway/{instance}",
                                   correlation_id=request[keys.REQUEST_ID], occurred_at=at))
    await _publish(request.app, envelopes)
    return web.json_response({"accepted": len(envelopes)}, status=202)


async def _publish(app: web.Application, envelopes: list[Envelope]) -> None:
    producer = app[keys.PRODUCER]
    topic = app[keys.SETTINGS].topic("analytics")
    try:
        deliveries = [
            await producer.send(topic, key=e.key.encode(), value=e.encode(), headers=e.headers())
            for e in envelopes
        ]
        await asyncio.gather(*deliveries)
    except KafkaError as exc:
        raise Unavailable(f"the events were not recorded ({type(exc).__name__}); retry") from None
