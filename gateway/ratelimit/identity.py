"""Who a request counts against: the verified user, else the client address."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.addresses import client_address
from gateway.auth import TokenService, bearer_token
from gateway.ratelimit.policies import Policy
from streams.errors import Unauthenticated

# Verifying a JWT costs ~130 µs here, more than the rest of the limiter; a verified token
# maps to the same user for its whole life, so the answer is cached (bounded, short-lived).
# An expired token still names the user who was issued it, so a stale entry is harmless here:
# the handler rejects the token anyway, and bucketing it by user grants nothing extra.
CACHE_SECONDS = 60.0
CACHE_SIZE = 10_000


class ClientIdentity:
    """Bucket keys for requests: ``u:<user id>`` from a valid token, else ``ip:<address>``."""

    def __init__(self, tokens: TokenService, *, trust_proxy: bool) -> None:
        self._tokens = tokens
        self._trust_proxy = trust_proxy
        self._verified: dict[str, tuple[str, float]] = {}

    def key(self, request: web.Request, policy: Policy) -> str:
        """The bucket key of ``request`` under ``policy``; never raises on a bad token."""
        if not policy.per_ip:
            user = self._user(request, stream=policy.name == "stream")
            if user is not None:
                return "u:" + user
        return "ip:" + self.address(request)

    def address(self, request: web.Request) -> str:
        """The client IP; X-Forwarded-For only counts when a trusted proxy appended it."""
        return client_address(request, trust_proxy=self._trust_proxy) or "unknown"

    def _user(self, request: web.Request, *, stream: bool) -> str | None:
        token = bearer_token(request)
        ticket = False
        if token is None and stream:
            token = request.query.get("token")
            ticket = token is not None
        if not token:
            return None
        cache_key = ("t:" if ticket else "b:") + token
        now = time.monotonic()
        hit = self._verified.get(cache_key)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            user_id = self._tokens.verify(token, stream=ticket).user_id
        except Unauthenticated:
            return None
        if len(self._verified) >= CACHE_SIZE:
            self._verified.clear()  # crude but bounded; refilled by the next requests
        self._verified[cache_key] = (user_id, now + CACHE_SECONDS)
        return user_id
