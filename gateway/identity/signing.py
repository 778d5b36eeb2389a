"""JWT signing keys: the one algorithm, the key that signs, the keys that verify (by kid).

HS256 (the default) signs with ``MERCATO_JWT_SECRET``; the ``kid`` is a digest of the
secret and retired secrets (``MERCATO_JWT_PREVIOUS_SECRETS``) still verify.

EdDSA, ES256 and RS256 sign with ``MERCATO_JWT_PRIVATE_KEY``; the ``kid`` is the RFC 7638
thumbprint of the public key, retired public keys (``MERCATO_JWT_PREVIOUS_PUBLIC_KEYS``)
still verify, and every public key is published as a JWK Set so other services can check
Mercato's tokens without holding any secret.

A key value that starts with ``-----BEGIN`` is the PEM itself (newlines may be written as
``\\n``); anything else is the path of a PEM file. Keys are read and checked here, when
the gateway starts, rather than in ``Settings``: only gateways sign, so workers never need
the private key. Errors are ``ConfigError``s naming the variable and never quoting a PEM.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from config.settings import JWT_KEYGEN, ConfigError, Settings

PrivateKey: TypeAlias = (
    ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey | ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
)
PublicKey: TypeAlias = (
    ed25519.Ed25519PublicKey | ed448.Ed448PublicKey | ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
)
# An HMAC secret (HS256) or a public key.
VerifyingKey: TypeAlias = str | PublicKey

MIN_RSA_BITS = 2048
PEM_START = "-----BEGIN"
PRIVATE_VAR = "MERCATO_JWT_PRIVATE_KEY"
PREVIOUS_VAR = "MERCATO_JWT_PREVIOUS_PUBLIC_KEYS"
# The members RFC 7638 hashes, per key type (already in lexicographic order).
_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y"),
                       "RSA": ("e", "kty", "n")}


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured algorithm, the key that signs, and every key that verifies, by kid."""

    algorithm: str
    kid: str
    signing_key: str | PrivateKey
    verifying: Mapping[str, VerifyingKey]
    # Checks tokens that carry no kid: HS256 tokens issued before kids existed. Asymmetric
    # tokens have always named their key, so there it is None and a missing kid is refused.
    legacy: VerifyingKey | None
    # The published JWK Set ({"keys": [...]}, current key first); None for HS256, whose
    # secret is never published.
    jwks: Mapping[str, Any] | None

    def verifying_key(self, kid: object) -> VerifyingKey | None:
        """The key that checks a token whose header names ``kid`` (None: refuse the token)."""
        if kid is None:
            return self.legacy
        return self.verifying.get(str(kid))


def key_ring(settings: Settings) -> KeyRing:
    """The keys ``settings`` configure; raises ``ConfigError`` for an unusable key."""
    if settings.jwt_algorithm == "HS256":
        return _hmac_ring(settings)
    return _asymmetric_ring(settings)


def key_id(secret: str) -> str:
    """The ``kid`` naming ``secret``: a digest, so it reveals nothing and needs no config."""
    digest = hashlib.sha256(b"mercato-jwt-kid:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of a public JWK."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(orjson.dumps(members, option=orjson.OPT_SORT_KEYS)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(key: PublicKey, algorithm: str) -> dict[str, Any]:
    """``key`` as a public JWK for ``algorithm``, named by its thumbprint."""
    if isinstance(key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    # "use" says the same thing, and RFC 7517 (4.3) advises against sending both.
    jwk.pop("key_ops", None)
    return {"kty": jwk["kty"], **jwk, "kid": thumbprint(jwk), "alg": algorithm, "use": "sig"}


def load_private_key(value: str, algorithm: str) -> PrivateKey:
    """The private key in ``value`` (a PEM or a PEM file's path), checked for ``algorithm``."""
    where = _where(value, PRIVATE_VAR)
    pem = _pem(value, where)  # outside the try: ConfigError is a ValueError too
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{where} is not an unencrypted PEM private key (make one with: "
            f"{JWT_KEYGEN[algorithm]})"
        ) from None
    if not isinstance(key, PrivateKey):
        raise ConfigError(_mismatch(where, _unsupported(key), algorithm))
    _check_public(key.public_key(), algorithm, where)
    return key


def load_public_keys(value: str, algorithm: str) -> list[PublicKey]:
    """The public keys listed (comma-separated PEMs or paths) in ``value``."""
    keys: list[PublicKey] = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        where = _where(entry, PREVIOUS_VAR)
        pem = _pem(entry, where)
        if b"PRIVATE KEY" in pem:
            # A retired private key has no business on a gateway: only its public half.
            raise ConfigError(
                f"{where} holds a private key; list only its public half "
                "(openssl pkey -in old.pem -pubout -out old.pub.pem)"
            )
        try:
            key = load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise ConfigError(f"{where} is not a PEM public key") from None
        if not isinstance(key, PublicKey):
            raise ConfigError(_mismatch(where, _unsupported(key), algorithm))
        _check_public(key, algorithm, where)
        keys.append(key)
    return keys


def _hmac_ring(settings: Settings) -> KeyRing:
    kid = key_id(settings.jwt_secret)
    verifying: dict[str, VerifyingKey] = {key_id(s): s for s in settings.previous_jwt_secrets}
    verifying[kid] = settings.jwt_secret
    return KeyRing(
        algorithm="HS256",
        kid=kid,
        signing_key=settings.jwt_secret,
        verifying=verifying,
        legacy=settings.jwt_secret,
        jwks=None,
    )


def _asymmetric_ring(settings: Settings) -> KeyRing:
    algorithm = settings.jwt_algorithm
    private = load_private_key(settings.jwt_private_key, algorithm)
    published: dict[str, tuple[PublicKey, dict[str, Any]]] = {}
    for key in (private.public_key(), *load_public_keys(settings.jwt_previous_public_keys,
                                                        algorithm)):
        jwk = public_jwk(key, algorithm)
        # The current key listed again among the previous ones is harmless: keep it once.
        published.setdefault(jwk["kid"], (key, jwk))
    current = next(iter(published))
    return KeyRing(
        algorithm=algorithm,
        kid=current,
        signing_key=private,
        verifying={kid: key for kid, (key, _) in published.items()},
        legacy=None,
        jwks={"keys": [jwk for _, jwk in published.values()]},
    )


def _where(value: str, variable: str) -> str:
    # Names the file, or just the variable for an inline PEM (which may be a secret).
    text = value.strip()
    return variable if text.startswith(PEM_START) else f"{variable} file {text!r}"


def _pem(value: str, where: str) -> bytes:
    text = value.strip()
    if text.startswith(PEM_START):
        return text.replace("\\n", "\n").encode()
    try:
        return Path(text).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{where} cannot be read ({exc.strerror}); give the path of a PEM file or the "
            f"PEM itself (starting with {PEM_START})"
        ) from None


def _check_public(key: PublicKey, algorithm: str, where: str) -> None:
    if algorithm == "EdDSA":
        fits = isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    elif algorithm == "ES256":
        fits = isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    else:
        fits = isinstance(key, rsa.RSAPublicKey)
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise ConfigError(
                f"{where} is a {key.key_size}-bit RSA key; RS256 needs at least "
                f"{MIN_RSA_BITS} bits (make one with: {JWT_KEYGEN[algorithm]})"
            )
    if not fits:
        raise ConfigError(_mismatch(where, _kind(key), algorithm))


def _kind(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448 key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name} key"
    return f"a {key.key_size}-bit RSA key"


def _unsupported(key: object) -> str:
    return f"an unsupported key type ({type(key).__name__})"


def _mismatch(where: str, kind: str, algorithm: str) -> str:
    return (
        f"{where} is {kind}, which MERCATO_JWT_ALGORITHM={algorithm} cannot use "
        f"(make a fitting key with: {JWT_KEYGEN[algorithm]})"
    )
