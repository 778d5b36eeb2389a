"""Storage quota held by uploads in flight, shared by every gateway through Redis.

An owner's usage (``stores.file_usage``) only grows once the files agent has projected
an upload, so two uploads streaming at once would each see the whole remaining quota and
could together overshoot it. Each upload therefore reserves the bytes it may write
before it starts: the reservation is what is left after usage *and* the other uploads in
flight, and it bounds the stream. Reservations are released once the upload is counted
(or failed); one whose gateway died expires after ``HOLD``.

Key (``{p}`` is the app id): ``{p}:quota:inflight:{ownerId}``, a hash of upload id to
``"bytes:expires-at-ms"``; expired entries are dropped by the next reservation.
"""

from __future__ import annotations

from redis.asyncio import Redis

# Longest an upload may hold its reservation if its gateway never releases it.
HOLD_SECONDS = 3600

# KEYS[1] the owner's hash; ARGV: upload id, wanted, available (quota - usage), now ms,
# hold ms. Returns the bytes granted (0: nothing left).
_RESERVE = """
local others = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local bytes, expires = string.match(fields[i + 1], '^(%d+):(%d+)$')
  if not bytes or tonumber(expires) <= tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif fields[i] ~= ARGV[1] then
    others = others + tonumber(bytes)
  end
end
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[3]) - others)
if granted <= 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], granted .. ':' .. (tonumber(ARGV[4]) + tonumber(ARGV[5])))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return granted
"""


class UploadReservations:
    """Reserves and releases quota for uploads in flight."""

    def __init__(self, redis: Redis, *, prefix: str, hold_seconds: int = HOLD_SECONDS) -> None:
        self._redis = redis
        self._prefix = prefix
        self._hold_ms = hold_seconds * 1000
        self._reserve = redis.register_script(_RESERVE)

    def key(self, owner_id: str) -> str:
        """The Redis hash of ``owner_id``'s reservations."""
        return f"{self._prefix}quota:inflight:{owner_id}"

    async def reserve(self, owner_id: str, upload_id: str, *, wanted: int, available: int,
                      now_ms: int) -> int:
        """Up to ``wanted`` bytes of the ``available`` ones not held by other uploads."""
        granted = await self._reserve(
            keys=[self.key(owner_id)],
            args=[upload_id, max(0, wanted), available, now_ms, self._hold_ms],
        )
        return int(granted)

    async def release(self, owner_id: str, upload_id: str) -> None:
        """Give the reservation back (the upload is counted in the usage, or failed)."""
        await self._redis.hdel(self.key(owner_id), upload_id)
