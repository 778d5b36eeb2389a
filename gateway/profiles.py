"""Profiles read through a small per-gateway cache: ``GET /v1/users/me`` is the hottest read.

Entries live ``ttl`` seconds (1 s, the same bound as token revocation), so another
gateway's change shows up here within that; a change made through *this* gateway
invalidates its entry at once (``gateway.usercommands.apply``). Misses are not
cached, so a new account is visible as soon as it is projected.

Concurrent misses for one user share a single MongoDB read. Without that, every request
arriving while an expired entry is being read again starts a read of its own: at 12,000
requests/s and a 10 ms read that was over a hundred reads per second for one busy user,
where one is enough.
"""

from __future__ import annotations

import asyncio
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
        # The read in progress per user; invalidate() drops it, so nothing read before a
        # change is stored after it.
        self._reads: dict[str, asyncio.Task[bytes | None]] = {}

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
        read = self._reads.get(user_id)
        if read is None:
            read = self._reads[user_id] = asyncio.ensure_future(self._read(user_id))
        # Shielded: a caller that goes away must not cancel the read the others wait for.
        return await asyncio.shield(read)

    async def _read(self, user_id: str) -> bytes | None:
        now = time.monotonic()
        try:
            user = await self._users.by_id(user_id)
        finally:
            current = self._reads.get(user_id) is asyncio.current_task()
            if current:
                del self._reads[user_id]
        if user is None:
            if current:
                self._entries.pop(user_id, None)
            return None
        body = orjson.dumps(user.to_json())
        if current:  # not invalidated while it was read
            self._entries[user_id] = (now + self._ttl, body)
            self._entries.move_to_end(user_id)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return body

    def invalidate(self, user_id: str) -> None:
        """Forget ``user_id`` (it just changed through this gateway), and any read under way."""
        self._entries.pop(user_id, None)
        self._reads.pop(user_id, None)
