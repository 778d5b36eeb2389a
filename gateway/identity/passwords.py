"""Argon2id password hashing, off the event loop.

Hashing costs tens of milliseconds of CPU by design; running it in a thread
keeps the loop serving other requests (argon2 releases the GIL). Unknown
emails are verified against a dummy hash so login takes as long either way.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# The parameters are recorded in each hash ($argon2id$v=19$m=...,t=...,p=...), so
# they can be raised later and old hashes still verify (and get rehashed on login).
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH = _HASHER.hash("mercato-timing-equaliser")


async def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; equally slow when there is no account (``None``)."""

    def check() -> bool:
        try:
            return (
                _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def needs_rehash(password_hash: str) -> bool:
    """Whether ``password_hash`` was made with other parameters than today's (rehash on login)."""
    try:
        return bool(_HASHER.check_needs_rehash(password_hash))
    except InvalidHashError:
        return True
