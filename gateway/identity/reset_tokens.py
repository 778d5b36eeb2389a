"""Password-reset tokens: random, single use, 30 minutes; Redis holds only their SHA-256.

Key: ``{p}:auth:reset:{sha256(token)}`` -> user id, TTL 30 min. Consuming is
an atomic get-and-delete (a Lua script that also returns the remaining TTL, so
a confirm that fails downstream can put the token back for the time it had left).
"""

from __future__ import annotations

import hashlib
import secrets

from redis.asyncio import Redis

RESET_TTL = 30 * 60

# KEYS[1] reset key: GETDEL plus the remaining lifetime, in one step.
_CONSUME = """
local user = redis.call('GET', KEYS[1])
if not user then return false end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {user, ttl}
"""


class ResetTokens:
    """Issues and consumes single-use password-reset tokens."""

    def __init__(self, redis: Redis, *, prefix: str, ttl: int = RESET_TTL) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl = ttl
        self._consume = redis.register_script(_CONSUME)

    def _key(self, token: str) -> str:
        return f"{self._prefix}auth:reset:{hashlib.sha256(token.encode()).hexdigest()}"

    async def issue(self, user_id: str) -> str:
        """A new reset token for ``user_id``."""
        token = secrets.token_urlsafe(32)
        await self._redis.set(self._key(token), user_id, ex=self.ttl)
        return token

    async def consume(self, token: str) -> tuple[str, int] | None:
        """``(user id, ms it had left)`` and the token is gone; None if unknown or expired."""
        if not token or len(token) > 200:
            return None
        found = await self._consume(keys=[self._key(token)])
        if not found:
            return None
        user, ttl = found
        return user.decode(), int(ttl)

    async def restore(self, token: str, user_id: str, remaining_ms: int) -> None:
        """Put a consumed token back (the reset could not be applied); never extends it."""
        if remaining_ms > 0:
            await self._redis.set(self._key(token), user_id, px=remaining_ms, nx=True)
