"""RFC 9457 problem details: the one place domain errors become HTTP responses."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway import keys
from streams.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MalformedRequest,
    MercatoError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    RangeNotSatisfiable,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)

PROBLEM_JSON = "application/problem+json"
# Problem types are names, not links: a URN says so and points at no host. Each code's
# meaning is in docs/api.md ("Errors") and in the OpenAPI description of each operation.
TYPE_BASE = "urn:mercato:problem:"

STATUS_BY_ERROR: tuple[tuple[type[MercatoError], int], ...] = (
    (InvalidInput, 422),
    (MalformedRequest, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PreconditionFailed, 412),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (RangeNotSatisfiable, 416),
    (PreconditionRequired, 428),
    (Unavailable, 503),
)


def status_for(error: MercatoError) -> int:
    """The HTTP status of a domain error (500 for an unmapped one)."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 500


def request_id(request: web.BaseRequest) -> str:
    """The id the edge gave ``request`` (empty outside the edge, e.g. in handler tests)."""
    return str(request.get(keys.REQUEST_ID, ""))


def problem(
    request: web.BaseRequest,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> web.Response:
    """A ``application/problem+json`` response with Mercato's extension members.

    ``instance`` is the request's path unless given (a request that could not be parsed
    has no trustworthy path).
    """
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path if instance is None else instance,
        "code": code,
        "requestId": request_id(request),
    }
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )


def from_error(request: web.Request, error: MercatoError) -> web.Response:
    """Render a domain error."""
    headers: dict[str, str] = {}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="mercato"'
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    errors = None
    if isinstance(error, InvalidInput):
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
    return problem(
        request,
        status=status_for(error),
        code=error.code,
        title=error.title,
        detail=error.detail,
        errors=errors,
        headers=headers or None,
    )


HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    """Render aiohttp's own errors (404 route, 405 method, 413 body) as problems too."""
    code = HTTP_CODES.get(exc.status, f"HTTP_{exc.status}")
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
    text = exc.text or ""
    # aiohttp's default body is "404: Not Found"; a handler's own text is kept as the detail.
    detail = exc.reason if not text or text.startswith(f"{exc.status}:") else text
    return problem(
        request,
        status=exc.status,
        code=code,
        title=exc.reason,
        detail=detail,
        headers=headers or None,
    )
