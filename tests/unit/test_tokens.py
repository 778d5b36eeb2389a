"""Access tokens and stream tickets: what is issued, and every way a forged one is refused."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from config import Settings
from gateway.identity.auth import ROLE_SCOPES, Principal, TokenService, scopes_for
from streams.errors import Forbidden, Unauthenticated

# 64 characters: long enough that pyjwt does not warn even for the HS512 forgery below.
SECRET = "unit-test-secret-" + "0" * 47


@pytest.fixture
def tokens(tmp_path: Path) -> TokenService:
    # Built here, not from conftest's ``settings``, which would start the embedded services.
    return TokenService(Settings(data_dir=tmp_path, jwt_secret=SECRET, access_token_ttl=600))


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "u-1",
        "roles": ["buyer"],
        "scope": "profile stream",
        "iss": "mercato",
        "aud": "mercato-api",
        "iat": now,
        "exp": now + 60,
        "jti": "j-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _invalid(tokens: TokenService, token: str, *, stream: bool = False) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token, stream=stream)
    return caught.value


def test_issue_verify_round_trip(tokens: TokenService) -> None:
    token = tokens.issue_access("u-1", ["seller", "buyer", "buyer"])
    principal = tokens.verify(token)
    assert principal.user_id == "u-1"
    assert principal.roles == frozenset({"buyer", "seller"})
    assert principal.scopes == scopes_for(["buyer", "seller"])
    assert principal.token_id


def test_issued_claims(tokens: TokenService) -> None:
    before = int(time.time())
    token = tokens.issue_access("u-1", ["buyer"])
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="mercato-api")
    assert set(claims) >= {"sub", "roles", "scope", "iat", "exp", "iss", "aud", "jti"}
    assert claims["sub"] == "u-1"
    assert claims["roles"] == ["buyer"]
    assert set(claims["scope"].split()) == ROLE_SCOPES["buyer"]
    assert claims["iss"] == "mercato"
    assert claims["aud"] == "mercato-api"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == tokens.access_ttl == 600
    assert (
        claims["jti"]
        != jwt.decode(
            tokens.issue_access("u-1", ["buyer"]),
            SECRET,
            algorithms=["HS256"],
            audience="mercato-api",
        )["jti"]
    )


def test_a_hand_signed_valid_token_is_accepted(tokens: TokenService) -> None:
    # The negative cases below differ from this one in exactly one respect.
    principal = tokens.verify(jwt.encode(_claims(), SECRET, algorithm="HS256"))
    assert principal.user_id == "u-1"
    assert principal.token_id == "j-1"


def test_expired_token(tokens: TokenService) -> None:
    past = int(time.time()) - 120
    token = jwt.encode(_claims(iat=past - 60, exp=past), SECRET, algorithm="HS256")
    assert _invalid(tokens, token).code == "TOKEN_EXPIRED"


def test_tampered_signature(tokens: TokenService) -> None:
    header, payload, signature = tokens.issue_access("u-1", ["buyer"]).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _invalid(tokens, f"{header}.{payload}.{flipped}").code == "INVALID_TOKEN"


def test_tampered_payload_keeps_old_signature(tokens: TokenService) -> None:
    header, _, signature = tokens.issue_access("u-1", ["buyer"]).split(".")
    forged = _b64(_claims(roles=["admin"], scope=" ".join(ROLE_SCOPES["admin"])))
    assert _invalid(tokens, f"{header}.{forged}.{signature}").code == "INVALID_TOKEN"


@pytest.mark.parametrize(
    ("name", "token_factory"),
    [
        ("wrong secret", lambda: jwt.encode(_claims(), "x" * 64, algorithm="HS256")),
        ("wrong audience", lambda: jwt.encode(_claims(aud="other"), SECRET, algorithm="HS256")),
        ("wrong issuer", lambda: jwt.encode(_claims(iss="evil"), SECRET, algorithm="HS256")),
        ("missing jti", lambda: jwt.encode(_claims(jti=None), SECRET, algorithm="HS256")),
        ("missing sub", lambda: jwt.encode(_claims(sub=None), SECRET, algorithm="HS256")),
        ("missing exp", lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256")),
        ("missing iat", lambda: jwt.encode(_claims(iat=None), SECRET, algorithm="HS256")),
        ("roles not a list", lambda: jwt.encode(_claims(roles="admin"), SECRET, "HS256")),
        ("scope not a string", lambda: jwt.encode(_claims(scope=["x"]), SECRET, "HS256")),
        # Same secret, another HMAC: only the configured algorithm is accepted.
        ("HS512", lambda: jwt.encode(_claims(), SECRET, algorithm="HS512")),
        ("alg none", lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."),
        ("alg None", lambda: f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{_b64(_claims())}."),
        ("garbage", lambda: "not-a-jwt"),
        ("empty", lambda: ""),
    ],
)
def test_invalid_tokens_are_refused(tokens: TokenService, name: str, token_factory: Any) -> None:
    error = _invalid(tokens, token_factory())
    assert error.code == "INVALID_TOKEN", name
    assert "not valid" in error.detail


def test_stream_ticket_only_verifies_as_a_ticket(tokens: TokenService) -> None:
    principal = tokens.verify(tokens.issue_access("u-1", ["buyer"]))
    ticket, ttl = tokens.issue_stream_ticket(principal)
    assert ttl == 60
    claims = jwt.decode(ticket, SECRET, algorithms=["HS256"], audience="mercato-api:stream")
    assert claims["exp"] - claims["iat"] == 60
    streamed = tokens.verify(ticket, stream=True)
    assert (streamed.user_id, streamed.roles, streamed.scopes) == (
        principal.user_id,
        principal.roles,
        principal.scopes,
    )
    assert _invalid(tokens, ticket).code == "INVALID_TOKEN"


def test_access_token_is_not_a_stream_ticket(tokens: TokenService) -> None:
    access = tokens.issue_access("u-1", ["buyer"])
    assert _invalid(tokens, access, stream=True).code == "INVALID_TOKEN"


def test_scopes_for_is_a_union_and_unknown_roles_grant_nothing() -> None:
    assert scopes_for(["buyer", "seller"]) == ROLE_SCOPES["buyer"] | ROLE_SCOPES["seller"]
    assert scopes_for(["buyer", "root"]) == ROLE_SCOPES["buyer"]
    assert scopes_for(["root", "superuser"]) == frozenset()
    assert scopes_for([]) == frozenset()
    assert "users:admin" not in scopes_for(["buyer", "seller"])
    assert "users:admin" in scopes_for(["admin"])


def test_unknown_role_in_a_token_grants_nothing(tokens: TokenService) -> None:
    principal = tokens.verify(tokens.issue_access("u-1", ["root"]))
    assert principal.roles == frozenset({"root"})
    assert principal.scopes == frozenset()
    assert not principal.is_admin


def _principal(*roles: str, user_id: str = "u-1") -> Principal:
    return Principal(user_id, frozenset(roles), scopes_for(roles), "j")


def test_principal_require() -> None:
    buyer = _principal("buyer")
    buyer.require("orders:write")
    with pytest.raises(Forbidden) as caught:
        buyer.require("users:admin")
    assert caught.value.code == "INSUFFICIENT_SCOPE"
    assert "users:admin" in caught.value.detail


def test_principal_require_self_or_admin() -> None:
    _principal("buyer").require_self_or_admin("u-1")
    _principal("admin", user_id="boss").require_self_or_admin("u-1")
    with pytest.raises(Forbidden) as caught:
        _principal("seller", user_id="u-2").require_self_or_admin("u-1")
    assert caught.value.code == "FORBIDDEN"
