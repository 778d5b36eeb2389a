"""Push channel names and who may subscribe to them.

``user:{id}`` the user themself (or an admin); ``product:{id}`` anyone
authenticated; ``order:{id}`` whoever the pluggable ``OrderAccess`` hook admits
(default: admins only); ``dashboard`` (the marketplace's analytics) admins only;
``dashboard:{sellerId}`` that seller (``dashboard:own``) or an admin.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Literal

from gateway.identity.auth import Principal
from streams.errors import Forbidden, InvalidInput

INVALID_CHANNEL = "INVALID_CHANNEL"
FORBIDDEN = "FORBIDDEN"
MAX_CHANNEL_LENGTH = 160
# Ids are opaque, but ':' ',' '.' and whitespace would clash with channel and SSE list syntax.
_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")

Kind = Literal["user", "order", "product", "dashboard"]
_WITH_ID: dict[str, Kind] = {
    "user": "user", "order": "order", "product": "product", "dashboard": "dashboard",
}

# Whether a principal may follow one order: (principal, order id) -> allowed.
OrderAccess = Callable[[Principal, str], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel name."""

    kind: Kind
    ident: str | None = None

    @property
    def name(self) -> str:
        """The channel as written on the wire and used as the record key."""
        return self.kind if self.ident is None else f"{self.kind}:{self.ident}"


def parse_channel(raw: object) -> Channel:
    """Parse a channel name; ``InvalidInput`` (``INVALID_CHANNEL``) for anything else."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_CHANNEL_LENGTH:
        raise InvalidInput("channel must be a non-empty string", code=INVALID_CHANNEL)
    if raw == "dashboard":
        return Channel("dashboard")
    kind, sep, ident = raw.partition(":")
    if sep and kind in _WITH_ID and _ID.fullmatch(ident):
        return Channel(_WITH_ID[kind], ident)
    raise InvalidInput(
        f"unknown channel {raw[:40]!r}; expected user:{{id}}, order:{{id}}, product:{{id}} "
        "dashboard or dashboard:{sellerId}",
        code=INVALID_CHANNEL,
    )


async def admins_only(principal: Principal, order_id: str) -> bool:
    """``OrderAccess`` of a hub given no lookup (``setup_push`` alone): only admins follow orders.

    The gateway installs push with the orders domain's lookup instead
    (``gateway.orders.ordering.order_access``: the order's buyer and sellers).
    """
    return principal.is_admin


async def authorize(principal: Principal, raw: object, order_access: OrderAccess) -> Channel:
    """The parsed channel if ``principal`` may subscribe to it; ``Forbidden`` otherwise."""
    channel = parse_channel(raw)
    allowed: bool
    if channel.kind == "user":
        allowed = channel.ident == principal.user_id or principal.is_admin
    elif channel.kind == "product":
        allowed = True
    elif channel.kind == "order":
        assert channel.ident is not None
        allowed = principal.is_admin or await order_access(principal, channel.ident)
    elif channel.ident is None:
        allowed = "dashboard" in principal.scopes
    else:
        allowed = "dashboard" in principal.scopes or (
            "dashboard:own" in principal.scopes and channel.ident == principal.user_id)
    if not allowed:
        raise Forbidden(f"you may not subscribe to {channel.name!r}", code=FORBIDDEN)
    return channel
