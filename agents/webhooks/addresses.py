"""SSRF guard: which addresses a webhook may reach, checked where the connection is made.

Outside dev a webhook URL must resolve only to public unicast addresses. The check runs at
registration and again at every delivery, through the resolver the HTTP client connects
with (``CheckedResolver``): the address checked is the address connected to, so a DNS
answer that changes between a check and the connection (rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from streams.errors import FieldError, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REFUSED = "WEBHOOK_URL_REFUSED"
DNS_TIMEOUT = "WEBHOOK_DNS_TIMEOUT"
MAX_URL = 2048
# A resolver that never answers must not hold a registration or a delivery slot.
RESOLVE_SECONDS = 5.0
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlRefused(InvalidInput):
    """A webhook URL that is not http(s), too long, or reaches a non-public address."""

    code = REFUSED

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[FieldError("url", detail)], code=self.code)


class ResolveTimeout(UrlRefused):
    """The URL's host did not resolve in time (the resolver is slow or unreachable)."""

    code = DNS_TIMEOUT


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    for reason, hit in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return reason
    # Shared (100.64/10), documentation and benchmarking ranges are neither private nor global.
    return None if address.is_global else "not public"


def checked_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of an http(s) URL of acceptable length; ``UrlRefused`` otherwise."""
    if len(url) > MAX_URL:
        raise UrlRefused(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("the URL is not valid") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused("the URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int, *, allow_private: bool) -> list[ResolveResult]:
    """Every address of ``host``, or ``UrlRefused`` if one of them is not public."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise ResolveTimeout(
            f"the host {host!r} did not resolve within {RESOLVE_SECONDS:g} s; try again later"
        ) from None
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"the host {host!r} does not resolve ({exc})") from None
    results: list[ResolveResult] = []
    for family, _, proto, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = None if allow_private else refusal(address)
        if reason is not None:
            # All or nothing: a client may connect to any of them.
            raise UrlRefused(f"the host {host!r} resolves to a {reason} address")
        results.append(ResolveResult(
            hostname=host, host=str(address), port=port, family=family, proto=proto,
            flags=socket.AI_NUMERICHOST,
        ))
    if not results:
        raise UrlRefused(f"the host {host!r} has no address")
    return results


def checked_literal(host: str, *, allow_private: bool) -> None:
    """Refuse ``host`` if it is an IP literal that may not be reached (a name passes)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    reason = None if allow_private else refusal(address)
    if reason is not None:
        raise UrlRefused(f"the host {host!r} is a {reason} address")


async def check(url: str, *, allow_private: bool) -> None:
    """Refuse ``url`` unless it is well formed and reaches only allowed addresses."""
    host, port = checked_url(url)
    await resolve(host, port, allow_private=allow_private)


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver for deliveries: only checked addresses are connected to."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The checked addresses of ``host`` (``UrlRefused`` if one is not allowed)."""
        return await resolve(host, port, allow_private=self._allow_private)

    async def close(self) -> None:
        """Nothing to release: resolution goes through the loop's getaddrinfo."""
