"""Cursor pagination shared by every listing: ``?limit=&cursor=`` in, an envelope out.

A cursor is opaque to clients: base64url of a JSON array holding the sort
position of the last item served (datetimes tagged so they round-trip).
Listings fetch ``limit + 1`` rows to know whether another page exists.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from aiohttp import web

from streams.errors import FieldError, InvalidCursor, InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_DATETIME_TAG = "$dt"
# Far above any cursor we issue (a sort position of a few short values, base64url), so a
# longer one was not ours: refused before it is decoded.
MAX_CURSOR = 2048
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
_CURSOR = re.compile(CURSOR_PATTERN)


@dataclasses.dataclass(frozen=True, slots=True)
class PageRequest:
    """What the client asked for: a page size and where to continue (None: from the start)."""

    limit: int
    after: tuple[Any, ...] | None

    @property
    def fetch(self) -> int:
        """How many rows to read: one extra tells whether there is a next page."""
        return self.limit + 1


def page_request(
    request: web.Request,
    *,
    default: int = DEFAULT_LIMIT,
    maximum: int = MAX_LIMIT,
    arity: int | None = None,
) -> PageRequest:
    """Parse ``limit`` (422 field error if bad) and ``cursor`` (400 ``INVALID_CURSOR``)."""
    raw = request.query.get("limit")
    limit = default
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= maximum:
            raise InvalidInput(
                "the query has invalid parameters",
                errors=[FieldError("limit", f"must be an integer from 1 to {maximum}")],
            )
    cursor = request.query.get("cursor")
    after = decode_cursor(cursor, arity=arity) if cursor else None
    return PageRequest(limit=limit, after=after)


def encode_cursor(*position: Any) -> str:
    """The opaque cursor for a sort position (str, int, float, bool, None or datetime values)."""
    values = [{_DATETIME_TAG: v.isoformat()} if isinstance(v, datetime) else v for v in position]
    return base64.urlsafe_b64encode(orjson.dumps(values)).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, arity: int | None = None) -> tuple[Any, ...]:
    """The sort position in ``cursor``; ``InvalidCursor`` if it is not one we issued."""
    # b64decode skips characters outside the alphabet: "a!b" would decode as "ab".
    if len(cursor) > MAX_CURSOR or not _CURSOR.match(cursor):
        raise InvalidCursor("the cursor is not valid; start again without one")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
        if not isinstance(values, list) or (arity is not None and len(values) != arity):
            raise ValueError("wrong shape")
        return tuple(_decode_value(v) for v in values)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor("the cursor is not valid; start again without one") from None


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {_DATETIME_TAG}:
            raise ValueError("unknown cursor value")
        return datetime.fromisoformat(value[_DATETIME_TAG])
    if isinstance(value, list):
        raise ValueError("nested cursor value")
    return value


def time_position(after: tuple[Any, ...] | None) -> tuple[datetime, str] | None:
    """A ``(createdAt, id)`` cursor's position; ``InvalidCursor`` if it holds no time there."""
    if after is None:
        return None
    if not isinstance(after[0], datetime):
        # Well-formed but not one of ours for this listing (decoded with the right arity).
        raise InvalidCursor("the cursor is not valid; start again without one")
    return after[0], str(after[1])


def page_response(
    rows: Sequence[T],
    page: PageRequest,
    *,
    position: Callable[[T], tuple[Any, ...]],
    render: Callable[[T], Any],
) -> dict[str, Any]:
    """``{data, pagination: {limit, hasMore, nextCursor}}`` from up to ``page.fetch`` rows."""
    has_more = len(rows) > page.limit
    served = rows[: page.limit]
    next_cursor = encode_cursor(*position(served[-1])) if has_more and served else None
    return {
        "data": [render(row) for row in served],
        "pagination": {"limit": page.limit, "hasMore": has_more, "nextCursor": next_cursor},
    }


# OpenAPI description of the two query parameters, for ``@operation(parameters=...)``.
PAGE_PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "nextCursor of the previous page (opaque, base64url).",
        "schema": {"type": "string", "pattern": CURSOR_PATTERN, "maxLength": MAX_CURSOR},
    },
)
