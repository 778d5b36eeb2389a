"""Routes that a built-in flag can switch off ask here, so each refusal reads the same."""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from streams.errors import Forbidden
from streams.flags.rules import Caller

# Stable codes of the refusals (docs/api.md, "Errors"; docs/features.md).
REGISTRATIONS_CLOSED = "REGISTRATIONS_CLOSED"
REVIEWS_DISABLED = "REVIEWS_DISABLED"


def require_flag(
    request: web.Request, name: str, caller: Caller | None, *, code: str, detail: str
) -> None:
    """Raise ``Forbidden`` (``code``) unless flag ``name`` is on for ``caller``."""
    if not request.app[keys.FLAGS].enabled(name, caller):
        raise Forbidden(detail, code=code)
