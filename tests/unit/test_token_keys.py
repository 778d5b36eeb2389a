"""Signing keys by kid, precise issue times and the revocation check in ``authenticate``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from config import Settings
from gateway import keys
from gateway.http.revocation import Revocations
from gateway.identity.auth import TokenService, authenticate, key_id
from streams.errors import Unauthenticated

CURRENT = "current-secret-" + "c" * 49
PREVIOUS = "previous-secret-" + "p" * 48


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, jwt_secret=CURRENT, jwt_previous_secrets=f" {PREVIOUS} ,")


def test_tokens_name_their_key_and_carry_millisecond_issue_times(settings: Settings) -> None:
    token = TokenService(settings).issue_access("u-1", ["buyer"])
    assert jwt.get_unverified_header(token)["kid"] == key_id(CURRENT)
    claims = jwt.decode(token, CURRENT, algorithms=["HS256"], audience="mercato-api")
    assert claims["iat_ms"] // 1000 == claims["iat"]
    assert TokenService(settings).verify(token).issued_at_ms == claims["iat_ms"]


def test_previous_secret_verifies_by_kid_but_never_signs(settings: Settings) -> None:
    old = TokenService(dataclasses.replace(settings, jwt_secret=PREVIOUS, jwt_previous_secrets=""))
    rotated = TokenService(settings)
    assert rotated.verify(old.issue_access("u-1", ["buyer"])).user_id == "u-1"
    assert jwt.get_unverified_header(rotated.issue_access("u-1", []))["kid"] == key_id(CURRENT)
    # Once the previous secret is dropped from the settings, its tokens stop verifying.
    dropped = TokenService(dataclasses.replace(settings, jwt_previous_secrets=""))
    with pytest.raises(Unauthenticated):
        dropped.verify(old.issue_access("u-1", ["buyer"]))
    assert settings.safe_dict()["jwt_previous_secrets"] == "***"
    assert PREVIOUS not in repr(settings)


def test_unknown_kid_and_kid_of_another_secret_are_refused(settings: Settings) -> None:
    tokens = TokenService(settings)
    claims = jwt.decode(tokens.issue_access("u-1", []), CURRENT, algorithms=["HS256"],
                        audience="mercato-api")
    wrong = (("nope", CURRENT), (key_id(CURRENT), PREVIOUS), (key_id(PREVIOUS), CURRENT))
    for kid, secret in wrong:
        forged = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})
        with pytest.raises(Unauthenticated):
            tokens.verify(forged)


def _request_with(token: str, app: web.Application) -> web.Request:
    return make_mocked_request("GET", "/", headers={"Authorization": f"Bearer {token}"}, app=app)


def test_authenticate_refuses_tokens_older_than_the_users_not_before(settings: Settings) -> None:
    tokens = TokenService(settings)
    token = tokens.issue_access("u-1", ["buyer"])
    issued = tokens.verify(token).issued_at_ms
    app = web.Application()
    app[keys.REVOCATIONS] = cast(Revocations, object())  # only its presence matters here

    fine = _request_with(token, app)
    fine[keys.NOT_BEFORE] = ("u-1", issued)
    assert authenticate(fine, tokens).user_id == "u-1"

    revoked = _request_with(token, app)
    revoked[keys.NOT_BEFORE] = ("u-1", issued + 1)
    with pytest.raises(Unauthenticated) as caught:
        authenticate(revoked, tokens)
    assert caught.value.code == "TOKEN_REVOKED"

    # Not looked up (or looked up for another user): refused, never waved through.
    for warmed in (None, ("u-2", 0)):
        request = _request_with(token, app)
        if warmed is not None:
            request[keys.NOT_BEFORE] = warmed
        with pytest.raises(Unauthenticated):
            authenticate(request, tokens)
