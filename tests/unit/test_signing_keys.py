"""Asymmetric signing (EdDSA, ES256, RS256): kids, rotation, the JWKS and every forgery refused."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
)

from config import ConfigError, Settings
from gateway.app import create_app
from gateway.identity.auth import TokenService, key_id
from gateway.identity.signing import PrivateKey, key_ring, public_jwk, thumbprint
from streams.errors import Unauthenticated
from tests.support.jwtkeys import (
    ASYMMETRIC,
    new_key,
    private_pem,
    public_pem,
    signing_settings,
    write,
)

SECRET = "unit-test-secret-" + "0" * 47


@pytest.fixture(scope="module")
def generated() -> dict[str, tuple[PrivateKey, PrivateKey]]:
    # (current, previous) per algorithm; RSA generation is slow enough to do once.
    return {algorithm: (new_key(algorithm), new_key(algorithm)) for algorithm in ASYMMETRIC}


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, jwt_secret=SECRET, access_token_ttl=600)


def _service(
    base: Settings, algorithm: str, key: PrivateKey, *, previous: tuple[PrivateKey, ...] = ()
) -> TokenService:
    return TokenService(
        signing_settings(base, algorithm, key, base.data_dir, previous=previous)
    )


def _kid(key: PrivateKey, algorithm: str) -> str:
    return str(public_jwk(key.public_key(), algorithm)["kid"])


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u-1", "roles": ["buyer"], "scope": "profile", "iss": "mercato",
            "aud": "mercato-api", "iat": now, "exp": now + 60, "jti": "j-1"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256(secret: bytes, headers: dict[str, Any]) -> str:
    """An HS256 token signed by hand: pyjwt itself refuses a PEM as an HMAC secret."""
    header = {"alg": "HS256", "typ": "JWT", **headers}
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(_claims()))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _refused(tokens: TokenService, token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token)
    assert caught.value.code == "INVALID_TOKEN"


@pytest.fixture(params=ASYMMETRIC)
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_round_trip_names_the_key_by_its_thumbprint(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    key, _ = generated[algorithm]
    tokens = _service(base, algorithm, key)
    token = tokens.issue_access("u-1", ["buyer"])
    header = jwt.get_unverified_header(token)
    assert header["alg"] == algorithm
    assert header["kid"] == _kid(key, algorithm)
    principal = tokens.verify(token)
    assert (principal.user_id, principal.roles) == ("u-1", frozenset({"buyer"}))
    ticket, _ = tokens.issue_stream_ticket(principal)
    assert tokens.verify(ticket, stream=True).user_id == "u-1"
    # Anyone holding only the public key can check the token.
    claims = jwt.decode(token, key.public_key(), algorithms=[algorithm], audience="mercato-api")
    assert claims["sub"] == "u-1"


def test_kid_is_the_rfc7638_thumbprint(
    generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    key, _ = generated[algorithm]
    jwk = public_jwk(key.public_key(), algorithm)
    required = {"EdDSA": ("crv", "kty", "x"), "ES256": ("crv", "kty", "x", "y"),
                "RS256": ("e", "kty", "n")}[algorithm]
    canonical = json.dumps({m: jwk[m] for m in required}, sort_keys=True, separators=(",", ":"))
    assert jwk["kid"] == _b64(hashlib.sha256(canonical.encode()).digest())


def test_thumbprint_matches_the_rfc7638_example() -> None:
    # RFC 7638, section 3.1.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR"
        "1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
        "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08q"
        "NLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awap"
        "JzKnqDKgw",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rotation_previous_public_key_verifies_until_removed(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    current, old = generated[algorithm]
    old_token = _service(base, algorithm, old).issue_access("u-1", ["buyer"])
    rotated = _service(base, algorithm, current, previous=(old,))
    assert rotated.verify(old_token).user_id == "u-1"
    # The retired key verifies but never signs.
    assert jwt.get_unverified_header(rotated.issue_access("u-1", []))["kid"] == _kid(
        current, algorithm
    )
    _refused(_service(base, algorithm, current), old_token)


def test_jwks_lists_current_then_previous_public_keys_only(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    current, old = generated[algorithm]
    # The current key listed among the previous ones too is published once.
    tokens = _service(base, algorithm, current, previous=(old, current))
    jwks = tokens.jwks
    assert jwks is not None
    published = jwks["keys"]
    assert [k["kid"] for k in published] == [_kid(current, algorithm), _kid(old, algorithm)]
    for jwk in published:
        assert jwk["alg"] == algorithm
        assert jwk["use"] == "sig"
        assert jwk["kty"] == {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}[algorithm]
        # No private member of any key type (RFC 7518 section 6).
        assert not {"d", "p", "q", "dp", "dq", "qi", "k", "key_ops"} & set(jwk)
    token = tokens.issue_access("u-1", ["buyer"])
    verifier = jwt.PyJWK(dict(published[0]))
    assert jwt.decode(token, verifier, algorithms=[algorithm], audience="mercato-api")["sub"]


def test_hs256_publishes_nothing(base: Settings) -> None:
    assert TokenService(base).jwks is None


def test_hs256_token_keyed_with_the_public_key_pem_is_refused(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    # The classic confusion: the verifier's public key (public, so the attacker has it)
    # used as an HMAC secret, with and without naming the current key.
    key, _ = generated[algorithm]
    tokens = _service(base, algorithm, key)
    for headers in ({"kid": _kid(key, algorithm)}, {}):
        _refused(tokens, _hs256(public_pem(key), headers))
        _refused(tokens, _hs256(public_pem(key).strip(), headers))


def test_asymmetric_tokens_are_refused_when_hs256_is_configured(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    key, _ = generated[algorithm]
    tokens = TokenService(base)
    for headers in ({"kid": key_id(SECRET)}, {}):
        _refused(tokens, jwt.encode(_claims(), key, algorithm=algorithm, headers=headers))


def test_another_algorithm_is_refused_even_with_our_kid(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    key, _ = generated[algorithm]
    tokens = _service(base, algorithm, key)
    ours = {"kid": _kid(key, algorithm)}
    for other in ASYMMETRIC:
        if other != algorithm:
            forged = jwt.encode(_claims(), generated[other][0], algorithm=other, headers=ours)
            _refused(tokens, forged)
    if algorithm == "RS256":
        # Same RSA key, another padding: still not the configured algorithm.
        _refused(tokens, jwt.encode(_claims(), key, algorithm="PS256", headers=ours))


def test_forgeries_are_refused(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]], algorithm: str
) -> None:
    key, _ = generated[algorithm]
    tokens = _service(base, algorithm, key)
    ours = {"kid": _kid(key, algorithm)}
    none_header = _b64(orjson.dumps({"alg": "none", "typ": "JWT", **ours}))
    header, payload, signature = tokens.issue_access("u-1", ["buyer"]).split(".")
    admin = _claims() | {"roles": ["admin"]}
    attacker = new_key(algorithm) if algorithm != "RS256" else generated[algorithm][1]
    forged = {
        "alg none": f"{none_header}.{_b64(orjson.dumps(_claims()))}.",
        "wrong key, our kid": jwt.encode(_claims(), attacker, algorithm=algorithm, headers=ours),
        "tampered payload": f"{header}.{_b64(orjson.dumps(admin))}.{signature}",
        "tampered signature": f"{header}.{payload}.{('A' if signature[0] != 'A' else 'B')}"
        f"{signature[1:]}",
        # Asymmetric tokens have always named their key: no kid, no key.
        "no kid": jwt.encode(_claims(), key, algorithm=algorithm),
        "unknown kid": jwt.encode(_claims(), key, algorithm=algorithm, headers={"kid": "x"}),
    }
    for name, token in forged.items():
        with pytest.raises(Unauthenticated) as caught:
            tokens.verify(token)
        assert caught.value.code == "INVALID_TOKEN", name


def test_inline_pem_with_real_or_escaped_newlines(
    base: Settings, generated: dict[str, tuple[PrivateKey, PrivateKey]]
) -> None:
    key, old = generated["EdDSA"]
    by_path = key_ring(signing_settings(base, "EdDSA", key, base.data_dir, previous=(old,)))
    pem = private_pem(key).decode()
    for inline in (pem, pem.replace("\n", "\\n")):
        settings = dataclasses.replace(
            base,
            jwt_algorithm="EdDSA",
            jwt_private_key=inline,
            jwt_previous_public_keys=" , " + public_pem(old).decode().replace("\n", "\\n"),
        )
        ring = key_ring(settings)
        assert ring.kid == by_path.kid
        assert ring.jwks == by_path.jwks


def _rsa_pem(bits: int) -> bytes:
    return private_pem(rsa.generate_private_key(public_exponent=65537, key_size=bits))


@pytest.mark.parametrize(
    ("algorithm", "make_pem", "expected"),
    [
        ("EdDSA", lambda: _rsa_pem(2048), "is a 2048-bit RSA key, which MERCATO_JWT_ALGORITHM"),
        ("RS256", lambda: private_pem(ed25519.Ed25519PrivateKey.generate()), "an Ed25519 key"),
        ("ES256", lambda: private_pem(ec.generate_private_key(ec.SECP384R1())), "secp384r1"),
        ("ES256", lambda: private_pem(ed25519.Ed25519PrivateKey.generate()), "an Ed25519 key"),
        ("RS256", lambda: _rsa_pem(1024), "1024-bit RSA key; RS256 needs at least 2048 bits"),
        ("EdDSA", lambda: public_pem(ed25519.Ed25519PrivateKey.generate()), "not an unencrypted"),
        ("EdDSA", lambda: b"-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----",
         "not an unencrypted PEM private key"),
        ("EdDSA", lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pass")),
         "not an unencrypted PEM private key"),
    ],
)
def test_unusable_private_keys_fail_with_a_clear_config_error(
    base: Settings, tmp_path: Path, algorithm: str, make_pem: Any, expected: str
) -> None:
    pem: bytes = make_pem()
    for value in (write(tmp_path / "key.pem", pem), pem.decode()):
        settings = dataclasses.replace(base, jwt_algorithm=algorithm, jwt_private_key=value)
        with pytest.raises(ConfigError, match="MERCATO_JWT_PRIVATE_KEY") as caught:
            TokenService(settings)
        message = str(caught.value)
        assert expected in message
        assert "openssl" in message
        # The message names a file, never quotes a PEM (it may be a private key).
        assert "BEGIN" not in message
        assert pem.decode().splitlines()[1] not in message


def test_unreadable_key_file(base: Settings, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.pem")
    settings = dataclasses.replace(base, jwt_algorithm="EdDSA", jwt_private_key=missing)
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        TokenService(settings)
    assert missing in str(caught.value)


@pytest.mark.parametrize(
    ("make_previous", "expected"),
    [
        (lambda: private_pem(ed25519.Ed25519PrivateKey.generate()), "holds a private key"),
        (lambda: public_pem(ec.generate_private_key(ec.SECP256R1())), "an EC secp256r1 key"),
        (lambda: b"-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----",
         "not a PEM public key"),
    ],
)
def test_unusable_previous_keys_fail_with_a_clear_config_error(
    base: Settings,
    generated: dict[str, tuple[PrivateKey, PrivateKey]],
    tmp_path: Path,
    make_previous: Any,
    expected: str,
) -> None:
    settings = signing_settings(base, "EdDSA", generated["EdDSA"][0], tmp_path)
    previous = write(tmp_path / "old.pem", make_previous())
    with pytest.raises(ConfigError, match="MERCATO_JWT_PREVIOUS_PUBLIC_KEYS") as caught:
        TokenService(dataclasses.replace(settings, jwt_previous_public_keys=previous))
    assert expected in str(caught.value)
    assert previous in str(caught.value)


def test_a_bad_key_stops_the_gateway_at_start(base: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(
        base, jwt_algorithm="EdDSA", jwt_private_key=write(tmp_path / "k.pem", _rsa_pem(2048))
    )
    with pytest.raises(ConfigError, match="MERCATO_JWT_ALGORITHM=EdDSA"):
        create_app(settings)
