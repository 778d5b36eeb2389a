"""Request ids, access logging and the single error boundary."""

from __future__ import annotations

import logging
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import keys, problems
from gateway.logs import request_id_var
from streams.errors import MercatoError

log = logging.getLogger("mercato.gateway")
access_log = logging.getLogger("mercato.access")
REQUEST_ID_HEADER = "X-Request-ID"
# Requests at least this slow are logged whatever MERCATO_ACCESS_LOG says.
SLOW_SECONDS = 1.0
# A client-sent id is echoed only if it is short and plain, so logs cannot be forged.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id; turn every error into problem+json; log unknown ones."""
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if sent and _SAFE_ID.match(sent) else os.urandom(16).hex()
    request[keys.REQUEST_ID] = request_id
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except MercatoError as exc:
            response = problems.from_error(request, exc)
            if response.status >= 500:
                log.error("unmapped domain error %s: %s", exc.code, exc.detail)
        except web.HTTPException as exc:
            if exc.status < 400:
                exc.headers[REQUEST_ID_HEADER] = request_id
                raise
            response = problems.from_http_exception(request, exc)
        except Exception:
            log.exception("unhandled error", extra={"path": request.path, "method": request.method})
            response = problems.problem(
                request,
                status=500,
                code="INTERNAL_ERROR",
                title="Internal server error",
                detail=f"Something went wrong on our side. Quote request id {request_id}.",
            )
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        elapsed = time.perf_counter() - started
        if (
            response.status >= 400 or elapsed >= SLOW_SECONDS or _logs_everything(request.app)
        ) and access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status,
                extra={"status": response.status, "ms": round(elapsed * 1000, 2)},
            )
        return response
    finally:
        request_id_var.reset(token)


def _logs_everything(app: web.Application) -> bool:
    settings = app.get(keys.SETTINGS)
    return settings is not None and settings.access_log == "all"
