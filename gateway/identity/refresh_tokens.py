"""Refresh-token families in Redis: rotation on every use, reuse revokes the family.

A refresh token is ``{familyId}.{secret}`` (both random; opaque to clients).
Redis keeps, per family, the owner and the SHA-256 of the one current token;
rotation swaps that hash atomically in a Lua script. Presenting a token of a
live family that is not the current one means an old token was replayed (or two
clients raced with the same token): the whole family is revoked. Each user's
family ids are kept in a set so a password reset can revoke them all.

A family also has an absolute lifetime (``MERCATO_SESSION_MAX_AGE``, 30 days): however
often it is refreshed, it ends that long after sign-in (``expired``), so a stolen refresh
token that is kept rotating does not live forever.

Keys (``{p}`` is the app id, so test runs and deployments sharing a Redis stay apart):
``{p}:auth:family:{familyId}`` hash {user, current, createdAt}, TTL = refresh lifetime,
renewed on rotation up to the maximum age; ``{p}:auth:user-families:{userId}`` set of
family ids, same TTL.
Scripts touch keys they derive, so they assume one Redis primary (not Redis Cluster).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from typing import Literal

from redis.asyncio import Redis

REFRESH_TTL = 7 * 24 * 60 * 60
MAX_AGE = 30 * 24 * 60 * 60

# KEYS[1] family; ARGV: presented hash, new hash, ttl ms, maximum age s. A replay is
# reported even for an expired family: it is the stronger signal.
_ROTATE = """
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return {'invalid', ''} end
if redis.call('HGET', KEYS[1], 'current') ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {'reused', user}
end
local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '0') or 0
local left_ms = (created + tonumber(ARGV[4]) - tonumber(redis.call('TIME')[1])) * 1000
if left_ms <= 0 then
  redis.call('DEL', KEYS[1])
  return {'expired', user}
end
redis.call('HSET', KEYS[1], 'current', ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[3]), left_ms))
return {'rotated', user}
"""

# KEYS[1] family. Any token of the family closes it: an old one is a replay, which would
# revoke the family anyway, and family ids only ever travel inside tokens.
_CLOSE = """
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return '' end
redis.call('DEL', KEYS[1])
return user
"""

# KEYS[1] the user's family set; ARGV[1] family key prefix.
_CLOSE_ALL = """
local families = redis.call('SMEMBERS', KEYS[1])
for _, family in ipairs(families) do redis.call('DEL', ARGV[1] .. family) end
redis.call('DEL', KEYS[1])
return #families
"""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def session_id(family_id: str) -> str:
    """A public name for a family (audit records); it cannot be turned into a token."""
    return _digest("session:" + family_id)[:16]


@dataclasses.dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of presenting a refresh token."""

    status: Literal["rotated", "reused", "expired", "invalid"]
    user_id: str | None = None
    token: str | None = None
    session_id: str | None = None


class Sessions:
    """Opens, rotates and revokes refresh-token families."""

    def __init__(
        self, redis: Redis, *, prefix: str, ttl: int = REFRESH_TTL, max_age: int = MAX_AGE
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl = min(ttl, max_age)
        self.max_age = max_age
        self._rotate = redis.register_script(_ROTATE)
        self._close = redis.register_script(_CLOSE)
        self._close_all = redis.register_script(_CLOSE_ALL)

    def _family_key(self, family_id: str) -> str:
        return f"{self._prefix}auth:family:{family_id}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}auth:user-families:{user_id}"

    async def open(self, user_id: str) -> tuple[str, str]:
        """A new family for ``user_id``; returns ``(refresh token, session id)``."""
        family_id = secrets.token_urlsafe(16)
        token = f"{family_id}.{secrets.token_urlsafe(32)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._family_key(family_id),
                mapping={"user": user_id, "current": _digest(token), "createdAt": int(time.time())},
            )
            pipe.expire(self._family_key(family_id), self.ttl)
            pipe.sadd(self._user_key(user_id), family_id)
            pipe.expire(self._user_key(user_id), self.ttl)
            await pipe.execute()
        return token, session_id(family_id)

    async def rotate(self, token: str) -> Rotation:
        """Swap ``token`` for a new one of the same family, atomically."""
        family_id = _family_of(token)
        if family_id is None:
            return Rotation("invalid")
        fresh = f"{family_id}.{secrets.token_urlsafe(32)}"
        status, user = await self._rotate(
            keys=[self._family_key(family_id)],
            args=[_digest(token), _digest(fresh), self.ttl * 1000, self.max_age],
        )
        outcome, user_id = status.decode(), user.decode()
        if outcome in ("reused", "expired"):
            await self._redis.srem(self._user_key(user_id), family_id)
            return Rotation(outcome, user_id=user_id, session_id=session_id(family_id))
        if outcome != "rotated":
            return Rotation("invalid")
        await self._redis.expire(self._user_key(user_id), self.ttl)
        return Rotation("rotated", user_id=user_id, token=fresh, session_id=session_id(family_id))

    async def close(self, token: str) -> tuple[str, str] | None:
        """Revoke the family of ``token``; ``(user id, session id)`` if it was live."""
        family_id = _family_of(token)
        if family_id is None:
            return None
        user = await self._close(keys=[self._family_key(family_id)])
        if not user:
            return None
        user_id = user.decode()
        await self._redis.srem(self._user_key(user_id), family_id)
        return user_id, session_id(family_id)

    async def close_all(self, user_id: str) -> int:
        """Revoke every family of ``user_id``; returns how many there were."""
        count: int = await self._close_all(
            keys=[self._user_key(user_id)], args=[f"{self._prefix}auth:family:"]
        )
        return count


def _family_of(token: str) -> str | None:
    family_id, dot, secret = token.partition(".")
    if not dot or not family_id or not secret or len(token) > 200:
        return None
    return family_id
