"""Profiles read through a small per-gateway cache: ``GET /v1/users/me`` is the hottest read.

Entries live ``ttl`` seconds (1 s, the same bound as token revocation), so another
gateway's change shows up here within that; a change made through *this* gateway
invalidates its entry at once (``gateway.usercommands.apply``). Misses are not
cached, so a new account is visible as soon as it is projected.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import orjson

from stores.users import UserRepository

DEFAULT_TTL = 1.0
DEFAULT_SIZE = 10_000


class ProfileCache:
    """A bounded, time-limited read-through cache over ``UserRepository.by_id``."""

    def __init__(
        self, users: UserRepository, *, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE
    ) -> None:
        self._users = users
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def cached(self, user_id: str) -> bytes | None:
        """The cached body of ``user_id`` if fresh, without awaiting anything."""
        entry = self._entries.get(user_id)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    async def body(self, user_id: str) -> bytes | None:
        """The profile of ``user_id`` as its JSON response body, at most ``ttl`` seconds old."""
        hit = self.cached(user_id)
        if hit is not None:
            return hit
        now = time.monotonic()
        user = await self._users.by_id(user_id)
        if user is None:
            self._entries.pop(user_id, None)
            return None
        body = orjson.dumps(user.to_json())
        self._entries[user_id] = (now + self._ttl, body)
        self._entries.move_to_end(user_id)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return body

    def invalidate(self, user_id: str) -> None:
        """Forget ``user_id`` (it just changed through this gateway)."""
        self._entries.pop(user_id, None)
