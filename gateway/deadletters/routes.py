"""/v1/admin/dead-letters: the records agents set aside, and re-driving one after a fix."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway import keys
from gateway.deadletters.keys import DEAD_LETTERS
from gateway.deadletters.redrive import redrive
from gateway.docs.openapi import operation
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from gateway.http.responses import Out, PaginationOut
from gateway.identity.auth import Principal, require_scope
from stores.deadletters import DeadLetter
from streams.errors import InvalidCursor, NotFound

routes = web.RouteTableDef()
RATE_LIMITED = "Too many requests (RATE_LIMITED, Retry-After)"
NOT_ADMIN = "Signed in, but not an admin (FORBIDDEN, INSUFFICIENT_SCOPE)"


class DeadLetterOut(Out):
    """A record an agent gave up on: where it was, why, and whether it was re-driven."""

    dead_letter_id: str
    agent: str
    topic: str
    partition: int
    offset: int
    key: str | None
    size: int
    truncated: bool
    error: str
    attempts: int
    failed_at: str
    redriven_at: str | None
    redriven_by: str | None


class DeadLetterDetailOut(DeadLetterOut):
    """A dead letter with the record's value (UTF-8; cut to the size limit if ``truncated``)."""

    value: str


class DeadLetterPageOut(Out):
    """A page of dead letters, newest first."""

    data: list[DeadLetterOut]
    pagination: PaginationOut


class PositionOut(Out):
    """Where a re-driven record was produced."""

    topic: str
    partition: int
    offset: int


class RedrivenOut(DeadLetterOut):
    """The dead letter marked re-driven, and its record's new position."""

    redriven_to: PositionOut


def _admin(request: web.Request) -> Principal:
    return require_scope(request, "deadletters:admin")


def _filter(name: str, description: str) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string"}}


@routes.get("/v1/admin/dead-letters")
@operation(
    "Dead letters (admin), newest first: records an agent could not process, with the "
    "position and the reason",
    tags=("admin",), auth=True,
    parameters=(
        _filter("topic", "Only records of this topic (its full name, as the letters show it)."),
        _filter("agent", "Only records this agent gave up on, e.g. orders."),
        *PAGE_PARAMETERS,
    ),
    responses={
        200: ("A page of dead letters", DeadLetterPageOut),
        400: ("Bad cursor (INVALID_CURSOR)", None),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        422: ("Invalid limit", None),
        429: (RATE_LIMITED, None),
    },
)
async def list_dead_letters(request: web.Request) -> web.Response:
    """Page through the dead letters, optionally of one topic or agent."""
    _admin(request)
    page = page_request(request, arity=2)
    after = None
    if page.after is not None:
        at, ident = page.after
        if not isinstance(at, datetime):
            raise InvalidCursor("the cursor is not valid; start again without one")
        after = (at, str(ident))
    rows = await request.app[DEAD_LETTERS].page(
        topic=request.query.get("topic") or None, agent=request.query.get("agent") or None,
        limit=page.fetch, after=after)
    return web.json_response(page_response(
        rows, page, position=lambda d: (d.failed_at, d.letter_id), render=DeadLetter.to_json))


@routes.get("/v1/admin/dead-letters/{id}")
@operation(
    "One dead letter (admin), with the record's value",
    tags=("admin",), auth=True,
    responses={
        200: ("The dead letter", DeadLetterDetailOut),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        404: ("No such dead letter (NOT_FOUND)", None),
        429: (RATE_LIMITED, None),
    },
)
async def get_dead_letter(request: web.Request) -> web.Response:
    """The dead letter and the value it kept."""
    _admin(request)
    letter = await request.app[DEAD_LETTERS].get(request.match_info["id"])
    if letter is None:
        raise NotFound("no such dead letter")
    return web.json_response({**letter.to_json(), "value": letter.value})


@routes.post("/v1/admin/dead-letters/{id}/redrive")
@operation(
    "Re-drive a dead letter (admin): its original key and value are produced again to its "
    "topic, once; a record that fails again becomes a new dead letter",
    tags=("admin",), auth=True,
    responses={
        202: ("Produced again: the agents process it as any record", RedrivenOut),
        401: ("Not signed in", None),
        403: (NOT_ADMIN, None),
        404: ("No such dead letter (NOT_FOUND)", None),
        409: ("Re-driven already (DEAD_LETTER_REDRIVEN), or its value was over the size "
              "limit and is not kept whole (DEAD_LETTER_TRUNCATED)", None),
        429: (RATE_LIMITED, None),
        503: ("The broker did not take the record (SERVICE_UNAVAILABLE, Retry-After); "
              "retrying is safe", None),
    },
)
async def redrive_dead_letter(request: web.Request) -> web.Response:
    """Produce the dead letter's record again, once."""
    principal = _admin(request)
    done = await redrive(request.app[DEAD_LETTERS], request.app[keys.PRODUCER],
                         request.match_info["id"], by=principal.user_id)
    body = {**done.letter.to_json(), "redrivenTo": {
        "topic": done.letter.topic, "partition": done.partition, "offset": done.offset}}
    return web.json_response(body, status=202)
