"""Bearer authentication: access tokens and short-lived stream tickets (JWT).

Only the configured algorithm (``MERCATO_JWT_ALGORITHM``: HS256, EdDSA, ES256 or
RS256) is accepted (``alg: none`` and algorithm confusion are rejected by pyjwt's
``algorithms=[...]``, and asymmetric keys are key objects that never double as an
HMAC secret), and ``iss``, ``aud``, ``exp``, ``iat`` are required on every token.

Key rotation (``gateway.identity.signing``): tokens name their key in the ``kid`` header
(HS256: a digest of the secret; asymmetric: the RFC 7638 thumbprint of the public
key), so every instance agrees without configuration; retired secrets or public
keys still verify the tokens they signed. An HS256 token without ``kid`` predates
kids and is checked against the current secret; an unknown ``kid`` is refused.

Revocation: a per-user "not before" instant (``gateway.http.revocation``) refuses
tokens issued earlier; ``iat_ms`` carries the issue time at millisecond
precision because ``iat`` is whole seconds.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from aiohttp import hdrs, web

from config import Settings
from gateway import keys
from gateway.identity.signing import key_id as key_id  # re-exported: kids of HS256 secrets
from gateway.identity.signing import key_ring
from streams.errors import Forbidden, Unauthenticated

STREAM_TICKET_TTL = 60
VERIFIED_CACHE_SIZE = 10_000
STREAM_AUDIENCE_SUFFIX = ":stream"

# Roles map to scopes here and only here; handlers ask for a scope, never a role.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "buyer": frozenset({"profile", "orders:write", "orders:read", "files", "stream"}),
    "seller": frozenset(
        {"profile", "orders:read", "products:write", "files", "stream", "dashboard:own",
         "webhooks"}
    ),
    "admin": frozenset(
        {
            "profile",
            "orders:read",
            "orders:write",
            "orders:admin",
            "products:write",
            "files",
            "stream",
            "dashboard",
            "dashboard:own",
            "users:admin",
            "audit:read",
            "deadletters:admin",
            "features:admin",
            "backups:admin",
            "webhooks",
        }
    ),
}


def scopes_for(roles: Iterable[str]) -> frozenset[str]:
    """The union of the scopes of ``roles`` (unknown roles grant nothing)."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_SCOPES.get(role, frozenset())
    return frozenset(granted)


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified token."""

    user_id: str
    roles: frozenset[str]
    scopes: frozenset[str]
    token_id: str
    # Milliseconds since the epoch; compared with the user's "not before" instant.
    issued_at_ms: int = 0
    # Seconds since the epoch when the token expires (0: unknown, e.g. built in tests).
    expires_at: float = 0.0
    # Proven by a short-lived stream ticket (``?token=`` on the push endpoints).
    ticket: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds the admin role."""
        return "admin" in self.roles

    def require(self, scope: str) -> None:
        """Raise ``Forbidden`` unless the token grants ``scope``."""
        if scope not in self.scopes:
            raise Forbidden(f"this action needs the {scope!r} scope", code="INSUFFICIENT_SCOPE")

    def require_self_or_admin(self, user_id: str) -> None:
        """Ownership rule used by every per-user resource."""
        if user_id != self.user_id and not self.is_admin:
            raise Forbidden("only the owner or an admin may do this")


class TokenService:
    """Issues and verifies Mercato's JWTs."""

    def __init__(self, settings: Settings) -> None:
        # Raises ConfigError for an unusable key, so a misconfigured gateway fails at start.
        self._keys = key_ring(settings)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = settings.access_token_ttl
        # token -> (principal, exp): a valid signature stays valid until exp, so a hit skips
        # the HMAC and claim checks (~200 us). Revocation is checked per request elsewhere.
        self._verified: OrderedDict[tuple[str, bool], tuple[Principal, float]] = OrderedDict()

    @property
    def access_ttl(self) -> int:
        """Lifetime of an access token, in seconds."""
        return self._ttl

    @property
    def jwks(self) -> Mapping[str, Any] | None:
        """The public JWK Set of the verifying keys; None when signing with a secret (HS256)."""
        return self._keys.jwks

    def issue_access(self, user_id: str, roles: Iterable[str]) -> str:
        """A signed access token for ``user_id``."""
        roles = sorted(set(roles))
        return self._encode(
            {"sub": user_id, "roles": roles, "scope": " ".join(sorted(scopes_for(roles)))},
            audience=self._audience,
            ttl=self._ttl,
        )

    def issue_stream_ticket(self, principal: Principal) -> tuple[str, int]:
        """A short-lived token usable only as ``?token=`` on the push endpoints."""
        token = self._encode(
            {
                "sub": principal.user_id,
                "roles": sorted(principal.roles),
                "scope": " ".join(sorted(principal.scopes)),
            },
            audience=self._audience + STREAM_AUDIENCE_SUFFIX,
            ttl=STREAM_TICKET_TTL,
        )
        return token, STREAM_TICKET_TTL

    def verify(self, token: str, *, stream: bool = False) -> Principal:
        """Verify signature, algorithm, issuer, audience and expiry; raise ``Unauthenticated``."""
        if not token.isascii():
            # A JWT is base64url and dots. aiohttp hands header bytes that are not UTF-8 over
            # as surrogates, which pyjwt cannot even encode (a UnicodeEncodeError, not a
            # PyJWTError): refuse any non-ASCII token here, before anything parses it.
            raise Unauthenticated("the token is not valid", code="INVALID_TOKEN")
        cached = self._verified.get((token, stream))
        if cached is not None:
            if time.time() < cached[1]:
                return cached[0]
            del self._verified[(token, stream)]
        principal, expires = self._verify(token, stream=stream)
        self._verified[(token, stream)] = (principal, expires)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str, *, stream: bool) -> tuple[Principal, float]:
        audience = self._audience + (STREAM_AUDIENCE_SUFFIX if stream else "")
        try:
            key = self._keys.verifying_key(jwt.get_unverified_header(token).get("kid"))
            if key is None:
                raise jwt.InvalidKeyError("unknown kid")
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._keys.algorithm],
                audience=audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", code="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid", code="INVALID_TOKEN") from None
        roles = claims.get("roles")
        scope = claims.get("scope")
        if not isinstance(roles, list) or not isinstance(scope, str):
            raise Unauthenticated("the token is not valid", code="INVALID_TOKEN")
        issued_ms = claims.get("iat_ms")
        if not isinstance(issued_ms, int):
            issued_ms = int(claims["iat"]) * 1000
        principal = Principal(
            user_id=str(claims["sub"]),
            roles=frozenset(str(r) for r in roles),
            scopes=frozenset(scope.split()),
            token_id=str(claims["jti"]),
            issued_at_ms=issued_ms,
            expires_at=float(claims["exp"]),
            ticket=stream,
        )
        return principal, principal.expires_at

    def _encode(self, claims: dict[str, Any], *, audience: str, ttl: int) -> str:
        now_ms = time.time_ns() // 1_000_000
        now = now_ms // 1000
        payload = {
            **claims,
            "iss": self._issuer,
            "aud": audience,
            "iat": now,
            "iat_ms": now_ms,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            payload,
            self._keys.signing_key,
            algorithm=self._keys.algorithm,
            headers={"kid": self._keys.kid},
        )


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any (the scheme in any case)."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if not header:
        return None
    if header.startswith("Bearer "):
        token = header[7:]  # the usual spelling, checked on every request
        if token and " " not in token:
            return token
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(
    request: web.Request, tokens: TokenService, *, allow_ticket: bool = False
) -> Principal:
    """The caller's principal from a Bearer token (or a ``?token=`` stream ticket if allowed)."""
    if keys.PRINCIPAL in request:
        return request[keys.PRINCIPAL]
    token = bearer_token(request)
    if token is not None:
        principal = tokens.verify(token)
    elif allow_ticket and "token" in request.query:
        principal = tokens.verify(request.query["token"], stream=True)
    else:
        raise Unauthenticated("send 'Authorization: Bearer <access token>'")
    _refuse_revoked(request, principal)
    request[keys.PRINCIPAL] = principal
    return principal


def require_scope(request: web.Request, scope: str) -> Principal:
    """The caller's principal if their token grants ``scope``: 401 without a token, else 403."""
    principal = authenticate(request, request.app[keys.TOKENS])
    principal.require(scope)
    return principal


def revoked(principal: Principal, not_before: int) -> bool:
    """Whether ``principal``'s token was issued before its user's not-before instant."""
    return principal.issued_at_ms < not_before


def _refuse_revoked(request: web.Request, principal: Principal) -> None:
    # The edge looked up the token's user before the handler ran (async, cached); an app
    # without revocations (unit tests of handlers) skips the check.
    if keys.REVOCATIONS not in request.app:
        return
    warmed = request.get(keys.NOT_BEFORE)
    if warmed is None or warmed[0] != principal.user_id:
        raise Unauthenticated("the token is not valid", code="INVALID_TOKEN")
    if revoked(principal, warmed[1]):
        raise Unauthenticated(
            "the token was revoked; sign in again or refresh", code="TOKEN_REVOKED"
        )
