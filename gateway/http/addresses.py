"""The client's address, the one rule every part of the gateway uses."""

from __future__ import annotations

from aiohttp import web


def client_address(request: web.Request, *, trust_proxy: bool) -> str | None:
    """The peer address, or the last X-Forwarded-For entry when behind a trusted proxy.

    Our proxy appends the address it saw; entries left of it are the client's own claims.
    """
    if trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.remote
