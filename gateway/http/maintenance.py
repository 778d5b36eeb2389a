"""Maintenance mode: while the ``maintenance`` flag is on, writes on /v1 answer 503.

The edge asks ``refused`` before the handler runs (``gateway.http.edge``, step 6) and the
OpenAPI document declares the 503 on every operation it covers, from the same rule.
Reads, WebSocket and SSE streams keep working; so do the requests an admin needs to
sign in, stay signed in, sign out and switch maintenance off again, stream tickets (they
write nothing, and without one a browser cannot open a push stream) and starting a
backup (a maintenance window is exactly when an operator takes one).
"""

from __future__ import annotations

from streams.errors import Unavailable

MAINTENANCE = "MAINTENANCE"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXEMPT_PATHS = frozenset({
    "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/stream-tickets",
    "/v1/admin/backups",
})
EXEMPT_PREFIX = "/v1/admin/features/"


def covers(method: str, path: str) -> bool:
    """Whether maintenance mode refuses ``method`` on ``path``."""
    return (
        method in WRITE_METHODS
        and path.startswith("/v1/")
        and path not in EXEMPT_PATHS
        and not path.startswith(EXEMPT_PREFIX)
    )


def under_maintenance(retry_after: int) -> Unavailable:
    """The refusal of a write while maintenance mode is on."""
    return Unavailable(
        "the platform is in maintenance: reads work, writes are refused; retry later",
        retry_after=retry_after,
        code=MAINTENANCE,
    )
