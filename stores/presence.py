"""Presence counts in Redis: each gateway's distinct viewers per channel, summed over gateways.

Counts, not member lists: a gateway writes one number per channel whose count changed
(at most once a second), so a reconnect storm costs each gateway one small write, not a
join and a leave per client. Each gateway's counts live in one hash that expires unless
the gateway renews it, so the viewers of a gateway that died drop out by themselves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

# The field of a gateway's hash holding its distinct viewers of any product: a channel
# name always has a ':' (gateway.push.channels), so it cannot clash with one.
ALL = "*"
# Channels read per script call: each is an argument of one HMGET per gateway.
READ_CHUNK = 500
# Gateways that have not beaten for this long leave the index (their hash is long gone).
FORGET_SECONDS = 3600

# KEYS[1] the index of gateways, ARGV[1] the hashes' key prefix, ARGV[2..] channels.
# Key names are built in the script, so this needs one Redis (not a cluster); an expired
# gateway's hash reads as nothing, which is what makes a dead gateway's viewers go.
_SUM = """
local channels = {}
local totals = {}
for i = 2, #ARGV do
  channels[#channels + 1] = ARGV[i]
  totals[#totals + 1] = 0
end
for _, gateway in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local counts = redis.call('HMGET', ARGV[1] .. gateway, unpack(channels))
  for i, count in ipairs(counts) do
    if count then totals[i] = totals[i] + tonumber(count) end
  end
end
return totals
"""


class PresenceCounts:
    """``{app_id}:presence:gw:{gateway}``: hash channel -> that gateway's distinct viewers
    (expiring ``ttl`` after its last write), indexed by the sorted set
    ``{app_id}:presence:gateways`` (member = gateway id, score = last write, ms)."""

    def __init__(self, redis: Redis, app_id: str, gateway_id: str, *, ttl: float) -> None:
        self._redis = redis
        self._index = f"{app_id}:presence:gateways"
        self._prefix = f"{app_id}:presence:gw:"
        self._gateway = gateway_id
        self._ttl_ms = max(1, int(ttl * 1000))
        self._sum = redis.register_script(_SUM)

    @property
    def _key(self) -> str:
        return self._prefix + self._gateway

    async def publish(self, changed: Mapping[str, int], *, replace: bool = False) -> bool:
        """Write this gateway's changed counts (0 removes one) and renew their expiry.

        ``replace``: ``changed`` is every count, and whatever the hash held goes. Returns
        whether the hash was there before this write; when it was not although the
        gateway had written counts, they were lost (Redis restarted, or was away longer
        than the ttl) and the caller must publish every count again.
        """
        now = int(time.time() * 1000)
        kept = {channel: count for channel, count in changed.items() if count > 0}
        gone = [channel for channel, count in changed.items() if count <= 0]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(self._key)
            if replace:
                pipe.delete(self._key)
            elif gone:
                pipe.hdel(self._key, *gone)
            if kept:
                pipe.hset(self._key, mapping={channel: n for channel, n in kept.items()})
            pipe.pexpire(self._key, self._ttl_ms)
            pipe.zadd(self._index, {self._gateway: now})
            pipe.zremrangebyscore(self._index, 0, now - FORGET_SECONDS * 1000)
            pipe.expire(self._index, FORGET_SECONDS)
            replies: list[Any] = await pipe.execute()
        return bool(replies[0])

    async def totals(self, channels: Sequence[str]) -> list[int]:
        """The viewers of each of ``channels``, summed over every live gateway."""
        found: list[int] = []
        for start in range(0, len(channels), READ_CHUNK):
            chunk = channels[start:start + READ_CHUNK]
            replies = await self._sum(keys=[self._index], args=[self._prefix, *chunk])
            found.extend(int(n) for n in replies)
        return found

    async def total(self, channel: str) -> int:
        """The viewers of ``channel``, summed over every live gateway."""
        return (await self.totals([channel]))[0]

    async def leave(self) -> None:
        """Withdraw this gateway's counts at once (a clean shutdown)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key)
            pipe.zrem(self._index, self._gateway)
            await pipe.execute()
