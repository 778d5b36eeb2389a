"""Streams end with the credentials that opened them: expiry and revocation.

A WebSocket or SSE stream is authorized once, when it opens. So that it cannot outlive
those credentials, the hub checks its streams every ``CHECK_SECONDS``:

* expiry: a stream opened with an access token ends when that token expires; one opened
  with a stream ticket (which lives 60 s, only to open it) ends one access-token lifetime
  after it opened;
* revocation: a stream whose token was issued before its user's "not before" instant
  (password reset, role change, admin action) ends within ``CHECK_SECONDS``, plus the
  revocation cache's own bound on other gateway instances.

Both close with ``CLOSE_SESSION_ENDED`` and a reason. The client refreshes its token and
reconnects, resuming from its last event id, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.http.revocation import Revocations
from gateway.identity.auth import Principal, revoked
from gateway.push.connection import Connection

# An application close code (4000-4999): "sign in again", like HTTP 401.
CLOSE_SESSION_ENDED = 4401
EXPIRED_REASON = "token expired"
REVOKED_REASON = "token revoked"
CHECK_SECONDS = 5.0


def session_end(principal: Principal, opened_at: float, access_ttl: int) -> float:
    """When a stream opened at ``opened_at`` by ``principal`` must end (epoch seconds)."""
    if principal.ticket or not principal.expires_at:
        return opened_at + access_ttl
    return principal.expires_at


async def ended(
    connections: Collection[Connection], revocations: Revocations | None, now: float
) -> list[tuple[Connection, str]]:
    """The connections whose credentials expired or were revoked, with the reason.

    Raises ``Unavailable`` when the revocations cannot be read (expiry is still applied
    by the caller's next check).
    """
    done = [(c, EXPIRED_REASON) for c in connections if now >= c.session_ends_at]
    live = [c for c in connections if now < c.session_ends_at]
    if revocations is not None and live:
        not_before = await revocations.many({c.principal.user_id for c in live})
        done += [
            (c, REVOKED_REASON) for c in live
            if revoked(c.principal, not_before.get(c.principal.user_id, 0))
        ]
    return done
