"""Asymmetric signing keys made in-test, and the PEM files the settings point at."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from config import Settings
from gateway.identity.signing import PrivateKey

ASYMMETRIC = ("EdDSA", "ES256", "RS256")


def new_key(algorithm: str, *, rsa_bits: int = 2048) -> PrivateKey:
    """A fresh private key that ``algorithm`` accepts."""
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def private_pem(key: PrivateKey) -> bytes:
    """``key`` as an unencrypted PKCS#8 PEM."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_pem(key: PrivateKey) -> bytes:
    """The public half of ``key`` as a SubjectPublicKeyInfo PEM."""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def write(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` and return the path as a settings value."""
    path.write_bytes(data)
    return str(path)


def signing_settings(
    base: Settings,
    algorithm: str,
    key: PrivateKey,
    directory: Path,
    *,
    previous: tuple[PrivateKey, ...] = (),
) -> Settings:
    """``base`` signing with ``key`` (a PEM file) and still verifying ``previous`` keys."""
    private_path = write(directory / f"{algorithm}-{id(key)}.pem", private_pem(key))
    previous_paths = [
        write(directory / f"{algorithm}-{id(old)}.pub.pem", public_pem(old)) for old in previous
    ]
    return dataclasses.replace(
        base,
        jwt_algorithm=algorithm,
        jwt_private_key=private_path,
        jwt_previous_public_keys=",".join(previous_paths),
    )
