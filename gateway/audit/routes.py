"""/v1/audit/logs: the append-only audit log, for admins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.audit.keys import AUDIT_LOGS
from gateway.docs.openapi import operation
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from gateway.http.responses import Out, PaginationOut
from gateway.identity.auth import require_scope
from stores.audit import AuditEntry, AuditQuery
from streams.errors import FieldError, InvalidCursor, InvalidInput

routes = web.RouteTableDef()


class AuditEntryOut(Out):
    """One audit record."""

    id: str
    action: str
    at: str
    actor_id: str | None
    subject_id: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    correlation_id: str
    source: str
    details: dict[str, Any]


class AuditPage(Out):
    """A page of audit records, newest first."""

    data: list[AuditEntryOut]
    pagination: PaginationOut


def _param(name: str, description: str, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


@routes.get("/v1/audit/logs")
@operation(
    "Audit records (admin), newest first",
    tags=("audit",),
    auth=True,
    parameters=(
        *PAGE_PARAMETERS,
        _param("actor", "Only records of this actor (user id)."),
        _param("action", "Only this action, e.g. auth.login_failed."),
        _param("from", "Records at or after this instant (RFC 3339).", "date-time"),
        _param("to", "Records before this instant (RFC 3339).", "date-time"),
    ),
    responses={
        200: ("A page", AuditPage),
        400: ("Bad cursor (INVALID_CURSOR)", None),
        401: ("Not signed in", None),
        403: ("Not an admin", None),
        422: ("Bad filter or limit", None),
    },
)
async def audit_logs(request: web.Request) -> web.Response:
    """Filter and page through the audit log."""
    require_scope(request, "audit:read")
    query = AuditQuery(
        actor=request.query.get("actor") or None,
        action=request.query.get("action") or None,
        since=_instant(request, "from"),
        until=_instant(request, "to"),
    )
    page = page_request(request, arity=2)
    after = None
    if page.after is not None:
        at, ident = page.after
        if not isinstance(at, datetime):
            raise InvalidCursor("the cursor is not valid; start again without one")
        after = (at, str(ident))
    rows = await request.app[AUDIT_LOGS].page(query, limit=page.fetch, after=after)
    return web.json_response(
        page_response(rows, page, position=lambda e: (e.at, e.entry_id), render=AuditEntry.to_json)
    )


def _instant(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            "the query has invalid parameters",
            errors=[FieldError(name, "must be an RFC 3339 time, e.g. 2024-05-17T12:00:00Z")],
        )
    return moment.astimezone(UTC)
