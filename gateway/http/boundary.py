"""Request ids, the error boundary and access logging, as used by ``gateway.http.edge``."""

from __future__ import annotations

import logging
import random
import re

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pymongo.errors import ConnectionFailure as MongoUnreachable
from redis.exceptions import ConnectionError as RedisUnreachable
from redis.exceptions import TimeoutError as RedisTimeout

from gateway.http import problems
from streams.errors import MercatoError, Unavailable

log = logging.getLogger("mercato.gateway")
access_log = logging.getLogger("mercato.access")
REQUEST_ID_HEADER = "X-Request-ID"
# Requests at least this slow are logged whatever MERCATO_ACCESS_LOG says.
SLOW_SECONDS = 1.0
# A client-sent id is echoed only if it is short and plain, so logs cannot be forged.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_for(sent: str | None) -> str:
    """The client's ``X-Request-ID`` if it is short and plain; a fresh random one otherwise."""
    return sent if sent and _SAFE_ID.match(sent) else random.getrandbits(128).to_bytes(16).hex()


# Redis or MongoDB unreachable, or not answering in time (pymongo's ConnectionFailure covers
# AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError).
STORE_OUTAGES = (RedisUnreachable, RedisTimeout, MongoUnreachable)


def render_failure(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The problem+json answer to ``exc`` (a raised redirect becomes a plain response)."""
    if isinstance(exc, MercatoError):
        response = problems.from_error(request, exc)
        # Only a domain error with no status of its own is a bug. A 503 is the answer an
        # outage calls for, and one ERROR line per refused request flooded the log while
        # the broker or a store restarted (issue #14).
        if response.status == 500:
            log.error("unmapped domain error %s: %s", exc.code, exc.detail)
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return web.Response(
                status=exc.status, reason=exc.reason, headers=exc.headers, body=exc.body
            )
        return problems.from_http_exception(request, exc)
    if isinstance(exc, STORE_OUTAGES):
        # A store that is down or too slow is not a bug: the caller may retry, and no stack
        # is needed to know what happened. Stores that answer with an error (a bad query,
        # a script failure) are bugs, and stay 500s below.
        log.warning("a store is unavailable: %s: %s", type(exc).__name__, exc)
        return problems.from_error(request, Unavailable(
            "a backing store is unavailable; retry shortly", retry_after=2))
    if isinstance(exc, HttpProcessingError):
        # aiohttp's parser refused part of the body as the handler read it (a multipart
        # part header with a NUL byte, a broken chunked encoding): the client's bytes, not
        # our failure. Its message quotes those bytes, so it is not repeated.
        log.info("refused a malformed request body (%s)", type(exc).__name__)
        return problems.problem(
            request, status=400, code="MALFORMED_REQUEST", title="Malformed request",
            detail="the request body is not valid (part headers or transfer encoding)",
        )
    log.error(
        "unhandled error", exc_info=exc, extra={"path": request.path, "method": request.method}
    )
    return problems.problem(
        request,
        status=500,
        code="INTERNAL_ERROR",
        title="Internal server error",
        detail="Something went wrong on our side. "
        f"Quote request id {problems.request_id(request)}.",
    )


def log_access(request: web.Request, status: int, elapsed: float) -> None:
    """One access-log line (the edge decides which requests get one)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %s", request.method, request.path, status,
            extra={"status": status, "ms": round(elapsed * 1000, 2)},
        )
