"""/.well-known/jwks.json through the real gateway: tokens verify with the published keys alone."""

from __future__ import annotations

import dataclasses

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from config import Settings
from gateway import keys
from tests.support.http import gateway_client
from tests.support.jwtkeys import signing_settings

pytestmark = pytest.mark.integration
JWKS = "/.well-known/jwks.json"


async def test_a_token_verifies_with_only_the_published_jwks(topics: Settings) -> None:
    current, retired = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    settings = signing_settings(
        # A tight read limit: fetching the keys must never count against it.
        dataclasses.replace(topics, rate_limit_enabled=True, rate_limits="read=1/3600:1"),
        "EdDSA",
        current,
        topics.data_dir,
        previous=(retired,),
    )
    async with gateway_client(settings) as client:
        access = client.app[keys.TOKENS].issue_access("u-jwks", ["buyer"])
        # A token the gateway issues over HTTP, for a caller it authenticated.
        minted = await client.post(
            "/v1/stream-tickets", headers={"Authorization": f"Bearer {access}"}
        )
        assert minted.status == 201, await minted.text()
        ticket = (await minted.json())["ticket"]

        for _ in range(3):
            response = await client.get(JWKS)
            assert response.status == 200
            # Per route from settings, revalidated in the background for 30 s more (#17).
            assert response.headers["Cache-Control"] == (
                "public, max-age=300, stale-while-revalidate=30"
            )
            assert "RateLimit" not in response.headers
        published = (await response.json())["keys"]

    assert len(published) == 2
    assert {jwk["alg"] for jwk in published} == {"EdDSA"}
    assert {jwk["use"] for jwk in published} == {"sig"}
    # What a relying party does: pick the key the token names, accept only its algorithm.
    by_kid = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in published}
    for token, audience in ((ticket, "mercato-api:stream"), (access, "mercato-api")):
        header = jwt.get_unverified_header(token)
        assert header["kid"] == published[0]["kid"]
        key = by_kid[header["kid"]]
        claims = jwt.decode(
            token, key, algorithms=[key.algorithm_name], audience=audience, issuer="mercato"
        )
        assert claims["sub"] == "u-jwks"


async def test_hs256_publishes_no_keys(topics: Settings) -> None:
    async with gateway_client(topics) as client:
        response = await client.get(JWKS, headers={"X-Request-ID": "jwks-1"})
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        problem = await response.json(content_type="application/problem+json")
    assert problem["code"] == "JWKS_NOT_CONFIGURED"
    assert problem["requestId"] == "jwks-1"
    assert "never published" in problem["detail"]
    assert topics.jwt_secret not in str(problem)
