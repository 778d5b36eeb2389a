"""/v1/webhooks: a seller's or admin's endpoints, their deliveries, a retry and a test ping.

Endpoints are configuration their owner edits, written here to MongoDB and announced on the
``webhooks`` topic (``webhook.changed``: a re-enabled endpoint's failures start again);
deliveries are the webhooks agent's, and a retry or a ping is a record for it. Each owner
sees only their own endpoints: another's is a 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from agents.webhooks import addresses, catalogue, signing
from gateway import keys
from gateway.docs.openapi import LOCATION_HEADER, operation
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response, time_position
from gateway.http.validation import parse_body
from gateway.identity.auth import Principal, require_scope
from gateway.runtime import commands
from gateway.webhooks.keys import DELIVERIES, WEBHOOKS
from gateway.webhooks.schemas import (
    CreatedWebhookOut,
    CreateWebhookBody,
    DeliveryPage,
    QueuedDeliveryOut,
    UpdateWebhookBody,
    WebhookOut,
    WebhookPage,
)
from stores.webhooks import Endpoint, delivery_json
from streams.envelope import derived_id, new_event, utcnow
from streams.errors import Conflict, NotFound
from streams.events.webhooks import DeliveryRequested, RetryRequested, WebhookChanged, WebhookPing

routes = web.RouteTableDef()
SCOPE = "webhooks"
WEBHOOK = "/v1/webhooks/{webhook_id}"
Responses = dict[int, tuple[str, type[BaseModel] | None]]

_AUTH: Responses = {
    401: ("Not signed in", None),
    403: ("Not a seller or admin (INSUFFICIENT_SCOPE)", None),
}
_OWN: Responses = {**_AUTH, 404: ("No such endpoint of yours", None)}
_URL_RULES = (
    "422: invalid fields; WEBHOOK_URL_REFUSED: not http(s), too long, or (outside dev) "
    "resolving to a private, loopback, link-local, multicast or reserved address; "
    "WEBHOOK_EVENTS: an unknown event type; WEBHOOK_DNS_TIMEOUT: the host did not resolve "
    "in time (try again)"
)


async def _checked_url(request: web.Request, url: str) -> None:
    """Refuse a URL the dispatcher would refuse (it checks again at every delivery)."""
    addresses.checked_url(url)
    if request.app[keys.SETTINGS].env != "dev":
        await addresses.check(url, allow_private=False)


async def _owned(request: web.Request, principal: Principal) -> Endpoint:
    webhook_id = request.match_info["webhook_id"]
    endpoint = await request.app[WEBHOOKS].owned(principal.user_id, webhook_id)
    if endpoint is None:
        raise NotFound("no such webhook endpoint of yours")
    return endpoint


async def _announce(
    request: web.Request, endpoint: Endpoint, change: str, *, enabled: bool
) -> None:
    await commands.publish(request, WebhookChanged.model_validate({
        "webhookId": endpoint.webhook_id, "ownerId": endpoint.owner_id, "change": change,
        "enabled": enabled, "at": utcnow(),
    }))


@routes.post("/v1/webhooks")
@operation(
    "Register a webhook endpoint (sellers and admins); its secret is shown only here",
    tags=("webhooks",),
    auth=True,
    body=CreateWebhookBody,
    headers={201: {"Location": LOCATION_HEADER}},
    responses={
        201: ("Registered; the secret is in the body, this once", CreatedWebhookOut),
        **_AUTH,
        409: ("Too many endpoints already (WEBHOOK_LIMIT)", None),
        422: (_URL_RULES, None),
    },
)
async def create_webhook(request: web.Request) -> web.Response:
    """Check the URL and events, store the endpoint, announce it."""
    principal = require_scope(request, SCOPE)
    body = await parse_body(request, CreateWebhookBody)
    events = catalogue.checked(body.events)
    await _checked_url(request, body.url)
    settings = request.app[keys.SETTINGS]
    repo = request.app[WEBHOOKS]
    # Counted before the insert: two racing registrations may pass one over the limit.
    if await repo.count_owned(principal.user_id) >= settings.webhook_max_per_owner:
        raise Conflict(
            f"you have {settings.webhook_max_per_owner} webhook endpoints already; delete one "
            "first", code="WEBHOOK_LIMIT",
        )
    now = utcnow()
    endpoint = Endpoint(
        webhook_id=uuid.uuid4().hex, owner_id=principal.user_id, admin=principal.is_admin,
        url=body.url, events=events, description=body.description,
        secret=signing.new_secret(), enabled=True,
        # Millisecond precision, as MongoDB keeps it, so the cursor of a page matches.
        created_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
    )
    await repo.create(endpoint)
    await _announce(request, endpoint, "registered", enabled=True)
    return web.json_response(
        {**endpoint.to_json(), "secret": endpoint.secret}, status=201,
        headers={"Location": f"/v1/webhooks/{endpoint.webhook_id}"},
    )


@routes.get("/v1/webhooks")
@operation(
    "The caller's webhook endpoints, newest first",
    tags=("webhooks",),
    auth=True,
    parameters=PAGE_PARAMETERS,
    responses={
        200: ("A page", WebhookPage),
        400: ("Bad cursor (INVALID_CURSOR)", None),
        **_AUTH,
        422: ("Bad limit", None),
    },
)
async def list_webhooks(request: web.Request) -> web.Response:
    """Read from the endpoint store."""
    principal = require_scope(request, SCOPE)
    page = page_request(request, arity=2)
    rows = await request.app[WEBHOOKS].page(
        principal.user_id, limit=page.fetch, after=time_position(page.after)
    )
    return web.json_response(page_response(
        rows, page, position=lambda e: (e.created_at, e.webhook_id), render=Endpoint.to_json,
    ))


@routes.get(WEBHOOK)
@operation(
    "One of the caller's webhook endpoints",
    tags=("webhooks",), auth=True, responses={200: ("The endpoint", WebhookOut), **_OWN},
)
async def get_webhook(request: web.Request) -> web.Response:
    """Its owner's view (no secret)."""
    principal = require_scope(request, SCOPE)
    return web.json_response((await _owned(request, principal)).to_json())


@routes.patch(WEBHOOK)
@operation(
    "Change an endpoint: URL, events, description; enabled: true re-enables a disabled one",
    tags=("webhooks",),
    auth=True,
    body=UpdateWebhookBody,
    responses={200: ("Changed", WebhookOut), **_OWN, 422: (_URL_RULES, None)},
)
async def update_webhook(request: web.Request) -> web.Response:
    """Check what changes the way registration does, then apply it."""
    principal = require_scope(request, SCOPE)
    body = await parse_body(request, UpdateWebhookBody)
    changes: dict[str, Any] = {}
    if body.url is not None:
        await _checked_url(request, body.url)
        changes["url"] = body.url
    if body.events is not None:
        changes["events"] = catalogue.checked(body.events)
    if "description" in body.model_fields_set:
        changes["description"] = body.description
    if body.enabled is not None:
        changes["enabled"] = body.enabled
    repo = request.app[WEBHOOKS]
    if not changes:
        return web.json_response((await _owned(request, principal)).to_json())
    endpoint = await repo.update(principal.user_id, request.match_info["webhook_id"], changes)
    if endpoint is None:
        raise NotFound("no such webhook endpoint of yours")
    await _announce(request, endpoint, "updated", enabled=endpoint.enabled)
    return web.json_response(endpoint.to_json())


@routes.delete(WEBHOOK)
@operation(
    "Delete an endpoint; its pending deliveries are not made",
    tags=("webhooks",), auth=True, responses={204: ("Deleted", None), **_OWN},
)
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete it from the store and announce it."""
    principal = require_scope(request, SCOPE)
    endpoint = await _owned(request, principal)
    if not await request.app[WEBHOOKS].delete(principal.user_id, endpoint.webhook_id):
        raise NotFound("no such webhook endpoint of yours")
    await _announce(request, endpoint, "deleted", enabled=False)
    return web.Response(status=204)


@routes.get(WEBHOOK + "/deliveries")
@operation(
    "The endpoint's deliveries, newest first: status, attempts, the last error",
    tags=("webhooks",),
    auth=True,
    parameters=PAGE_PARAMETERS,
    responses={
        200: ("A page", DeliveryPage),
        400: ("Bad cursor (INVALID_CURSOR)", None),
        **_OWN,
        422: ("Bad limit", None),
    },
)
async def list_deliveries(request: web.Request) -> web.Response:
    """Read from the delivery log the webhooks agent writes."""
    principal = require_scope(request, SCOPE)
    endpoint = await _owned(request, principal)
    page = page_request(request, arity=2)
    rows = await request.app[DELIVERIES].page(
        endpoint.webhook_id, limit=page.fetch, after=time_position(page.after)
    )
    return web.json_response(page_response(
        rows, page, position=lambda d: (d["createdAt"], d["_id"]), render=delivery_json,
    ))


@routes.post(WEBHOOK + "/deliveries/{delivery_id}/retry")
@operation(
    "Try a delivery again now, with the whole retry schedule after it",
    tags=("webhooks",),
    auth=True,
    responses={
        202: ("Queued", QueuedDeliveryOut),
        **_AUTH,
        404: ("No such endpoint or delivery of yours", None),
        409: ("The endpoint is disabled; enable it first (WEBHOOK_DISABLED)", None),
    },
)
async def retry_delivery(request: web.Request) -> web.Response:
    """Hand the retry to the webhooks agent, in order with the endpoint's other records."""
    principal = require_scope(request, SCOPE)
    endpoint = await _owned(request, principal)
    delivery_id = request.match_info["delivery_id"]
    entry = await request.app[DELIVERIES].entry(endpoint.webhook_id, delivery_id)
    if entry is None:
        raise NotFound("no such delivery of this endpoint")
    if not endpoint.enabled:
        # Queued, it would fail at once without a request (and count nothing): say so now.
        raise Conflict("the endpoint is disabled; enable it (PATCH enabled: true) before "
                       "retrying its deliveries", code="WEBHOOK_DISABLED")
    await commands.publish(request, RetryRequested(
        webhook_id=endpoint.webhook_id, delivery_id=delivery_id, at=utcnow(),
        body=entry.get("body"),
    ))
    return web.json_response({"deliveryId": delivery_id}, status=202)


@routes.post(WEBHOOK + "/test")
@operation(
    "Send the endpoint a signed webhook.ping delivery (logged like any other)",
    tags=("webhooks",),
    auth=True,
    responses={202: ("Queued", QueuedDeliveryOut), **_OWN},
)
async def test_webhook(request: web.Request) -> web.Response:
    """A ping is a delivery like the others: signed, retried, in the log."""
    principal = require_scope(request, SCOPE)
    endpoint = await _owned(request, principal)
    now = utcnow()
    ping = new_event(
        WebhookPing(webhook_id=endpoint.webhook_id, at=now), key=endpoint.webhook_id,
        source=request.app[keys.COMMANDS].source, correlation_id=request[keys.REQUEST_ID],
    )
    delivery_id = derived_id(endpoint.webhook_id, ping.id)
    await commands.publish(request, DeliveryRequested(
        webhook_id=endpoint.webhook_id, delivery_id=delivery_id, event_id=ping.id,
        event_type=ping.type, body=ping.encode().decode(), requested_at=now,
    ))
    return web.json_response({"deliveryId": delivery_id}, status=202)

