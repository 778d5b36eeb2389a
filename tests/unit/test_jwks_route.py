"""The JWKS handler and its published description, without any service."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives.asymmetric import ec

from config import Settings
from gateway import keys
from gateway.docs.openapi import build_openapi
from gateway.identity import jwks_routes as jwks
from gateway.identity.auth import TokenService
from streams.errors import NotFound
from tests.support.jwtkeys import signing_settings

SECRET = "x" * 48


def _app(tokens: TokenService, settings: Settings) -> web.Application:
    app = web.Application()
    app[keys.TOKENS] = tokens
    app[keys.SETTINGS] = settings
    app.router.add_routes(jwks.routes)
    return app


async def test_publishes_the_key_set_cacheable_for_five_minutes(tmp_path: Path) -> None:
    settings = signing_settings(
        Settings(data_dir=tmp_path, jwt_secret=SECRET), "ES256",
        ec.generate_private_key(ec.SECP256R1()), tmp_path,
    )
    tokens = TokenService(settings)
    request = make_mocked_request("GET", "/.well-known/jwks.json", app=_app(tokens, settings))
    response = await jwks.jwks(request)
    assert isinstance(response, web.Response)
    assert response.status == 200
    # Per route from settings (#17), revalidated in the background for 30 s more.
    assert response.headers["Cache-Control"] == (
        "public, max-age=300, stale-while-revalidate=30"
    )
    assert response.headers["ETag"].startswith('"')
    again = make_mocked_request(
        "GET", "/.well-known/jwks.json", app=request.app,
        headers={"If-None-Match": response.headers["ETag"]},
    )
    assert (await jwks.jwks(again)).status == 304
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == tokens.jwks


async def test_hs256_answers_not_found_with_a_stable_code(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    request = make_mocked_request(
        "GET", "/.well-known/jwks.json", app=_app(TokenService(settings), settings)
    )
    with pytest.raises(NotFound) as caught:
        await jwks.jwks(request)
    assert caught.value.code == "JWKS_NOT_CONFIGURED"
    assert SECRET not in caught.value.detail


def test_operation_is_public_and_documents_both_answers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    document = build_openapi(_app(TokenService(settings), settings), title="t", version="1")
    op = document["paths"]["/.well-known/jwks.json"]["get"]
    assert "security" not in op
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JwkSet"
    }
    assert "application/problem+json" in op["responses"]["404"]["content"]
    jwk = document["components"]["schemas"]["Jwk"]
    assert set(jwk["required"]) == {"kty", "kid", "alg", "use"}
