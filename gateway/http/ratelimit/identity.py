"""Who a request counts against: the verified user, else the client address."""

from __future__ import annotations

from aiohttp import web

from gateway.http.addresses import client_address
from gateway.http.ratelimit.policies import Policy
from gateway.identity.auth import Principal


class ClientIdentity:
    """Bucket keys for requests: ``u:<user id>`` from a valid token, else ``ip:<address>``.

    A token that does not verify (expired, tampered, revoked-and-unknown) names nobody, so
    its requests count against the client address: a bad token never opens a fresh bucket.
    """

    def __init__(self, *, trust_proxy: bool) -> None:
        self._trust_proxy = trust_proxy

    def key(
        self, request: web.Request, policy: Policy, caller: tuple[Principal, bool] | None
    ) -> str:
        """The bucket key of ``request`` under ``policy``.

        ``caller``: the verified principal and whether it came as a ``?token=`` stream
        ticket, which only counts on the push endpoints (the ``stream`` class).
        """
        if caller is not None and not policy.per_ip:
            principal, ticket = caller
            if not ticket or policy.name == "stream":
                return "u:" + principal.user_id
        return "ip:" + self.address(request)

    def address(self, request: web.Request) -> str:
        """The client IP; X-Forwarded-For only counts when a trusted proxy appended it."""
        return client_address(request, trust_proxy=self._trust_proxy) or "unknown"
