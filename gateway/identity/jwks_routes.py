"""/.well-known/jwks.json: the public keys that verify Mercato's tokens (RFC 7517 JWK Set)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from gateway import keys
from gateway.docs.openapi import operation
from gateway.http.caching import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    PUBLIC_HEADERS,
    cache_control,
    public_answer,
    public_read,
)
from streams.errors import NotFound

routes = web.RouteTableDef()



class Jwk(BaseModel):
    """One public signing key; which members are present depends on ``kty``."""

    kty: Literal["OKP", "EC", "RSA"]
    kid: str = Field(description="RFC 7638 thumbprint; tokens name it in their header.")
    alg: Literal["EdDSA", "ES256", "RS256"]
    use: Literal["sig"]
    crv: str | None = Field(default=None, description="OKP and EC: Ed25519, Ed448 or P-256.")
    x: str | None = None
    y: str | None = None
    n: str | None = None
    e: str | None = None


class JwkSet(BaseModel):
    """The current signing key first, then retired ones that still verify."""

    keys: list[Jwk]


@routes.get("/.well-known/jwks.json")
@operation(
    "Public keys that verify access tokens",
    tags=("auth",),
    parameters=(IF_NONE_MATCH,),
    headers=PUBLIC_HEADERS,
    responses={
        200: ("JWK Set of the current and retired public keys", JwkSet),
        304: NOT_MODIFIED,
        404: ("Tokens are signed with a shared secret (HS256); nothing is published", None),
    },
)
@public_read
async def jwks(request: web.Request) -> web.Response:
    """Publish the JWK Set, or 404 when signing is symmetric."""
    document = request.app[keys.TOKENS].jwks
    if document is None:
        raise NotFound(
            "tokens are signed with a symmetric key (HS256), and symmetric keys are never "
            "published; verify tokens through this API instead",
            code="JWKS_NOT_CONFIGURED",
        )
    settings = request.app[keys.SETTINGS]
    control = cache_control(settings.cache_jwks_max_age, settings.cache_stale_while_revalidate)
    return public_answer(request, document, control=control)
