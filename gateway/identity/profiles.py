"""Profiles read through a small per-gateway cache: ``GET /v1/users/me`` is the hottest read.

Entries live ``ttl`` seconds (1 s, the same bound as token revocation), so another
gateway's change shows up here within that; a change made through *this* gateway
invalidates its entry at once (``gateway.identity.usercommands.apply``). Misses are not
cached, so a new account is visible as soon as it is projected.

Concurrent misses for one user share a single MongoDB read. Without that, every request
arriving while an expired entry is being read again starts a read of its own: at 12,000
requests/s and a 10 ms read that was over a hundred reads per second for one busy user,
where one is enough.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import orjson

from gateway.runtime.singleflight import SingleFlight
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
        # One read per user at a time; invalidate() forgets it, so nothing read before a
        # change is kept after it.
        self._reads: SingleFlight[str, bytes | None] = SingleFlight()

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
        started = time.monotonic()
        return await self._reads.load(
            user_id, lambda: self._read(user_id), lambda body: self._keep(user_id, body, started)
        )

    async def _read(self, user_id: str) -> bytes | None:
        user = await self._users.by_id(user_id)
        return None if user is None else orjson.dumps(user.to_json())

    def _keep(self, user_id: str, body: bytes | None, read_at: float) -> None:
        if body is None:
            self._entries.pop(user_id, None)
            return
        self._entries[user_id] = (read_at + self._ttl, body)
        self._entries.move_to_end(user_id)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def invalidate(self, user_id: str) -> None:
        """Forget ``user_id`` (it just changed through this gateway), and any read under way."""
        self._entries.pop(user_id, None)
        self._reads.forget(user_id)
