"""Token buckets shared by every gateway instance: one Lua script in Redis, called in batches."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from gateway.http.ratelimit.policies import Policy

log = logging.getLogger("mercato.ratelimit")

# KEYS[1] = bucket; ARGV = tokens wanted, capacity, refill per second.
# Time is Redis's own (TIME), so gateway clocks never matter. An absent key is a full
# bucket, so the key expires once it would have refilled completely.
SCRIPT = b"""
local want = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
end
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local full_ms = math.ceil((capacity - tokens) / rate * 1000)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
local retry_ms = 0
if granted == 0 then retry_ms = math.ceil((1 - tokens) / rate * 1000) end
return {granted, math.floor(tokens), retry_ms, full_ms}
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT).hexdigest()  # noqa: S324  (Redis names scripts by SHA-1)
# After Redis fails, requests are admitted without asking it for this long, then it is retried.
FAIL_OPEN_SECONDS = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """Redis's answer for one bucket: tokens granted and the bucket's state afterwards."""

    granted: int
    remaining: int
    retry_after: float
    full_in: float
    fail_open: bool = False


_Item = tuple[str, Policy, int, "asyncio.Future[Grant]"]


class SharedBuckets:
    """Takes tokens from Redis buckets; requests of one loop turn share one pipeline."""

    def __init__(self, redis: Redis, *, on_fail_open: Callable[[int], None]) -> None:
        self._redis = redis
        self._on_fail_open = on_fail_open
        self._queue: list[_Item] = []
        self._drainer: asyncio.Task[None] | None = None
        self._open_until = 0.0

    async def load(self) -> None:
        """Load the script ahead of the first request (best effort: EVALSHA reloads it)."""
        try:
            await self._redis.script_load(SCRIPT)
        except (RedisError, OSError) as exc:
            self._trip(exc)

    def take(self, key: str, policy: Policy, want: int) -> asyncio.Future[Grant]:
        """Up to ``want`` tokens from bucket ``key``; resolves after the next batched round trip."""
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        if time.monotonic() < self._open_until:
            self._on_fail_open(1)
            future.set_result(Grant(want, 0, 0.0, 0.0, fail_open=True))
            return future
        self._queue.append((key, policy, want, future))
        if self._drainer is None:
            # One drainer at a time: while a batch is on the wire the next one accumulates.
            self._drainer = asyncio.create_task(self._drain())
        return future

    async def close(self) -> None:
        """Stop the drainer; waiting requests are failed open rather than left hanging."""
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        self._resolve_open(self._queue)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._send(batch)
                except asyncio.CancelledError:
                    self._resolve_open(batch)
                    raise
        finally:
            self._drainer = None

    async def _send(self, batch: list[_Item]) -> None:
        try:
            results = await self._run(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                # Redis restarted or was flushed: load the script once and resend the batch.
                await self._redis.script_load(SCRIPT)
                results = await self._run(batch)
        except (RedisError, OSError) as exc:
            self._trip(exc)
            self._resolve_open(batch)
            return
        if self._open_until:
            self._open_until = 0.0
            log.warning("rate limiter: Redis answers again; limits are enforced")
        for (_key, _policy, want, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                log.warning("rate limiter: script failed, admitting: %s", result)
                self._on_fail_open(1)
                future.set_result(Grant(want, 0, 0.0, 0.0, fail_open=True))
                continue
            granted, remaining, retry_ms, full_ms = (int(v) for v in result)
            future.set_result(Grant(granted, remaining, retry_ms / 1000, full_ms / 1000))

    async def _run(self, batch: list[_Item]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for key, policy, want, _future in batch:
            pipe.evalsha(SCRIPT_SHA, 1, key, want, policy.burst, repr(policy.rate))
        return list(await pipe.execute(raise_on_error=False))

    def _trip(self, exc: BaseException) -> None:
        if not self._open_until:
            log.warning(
                "rate limiter: Redis unavailable (%s); admitting requests without limits "
                "and retrying every %.0fs",
                exc,
                FAIL_OPEN_SECONDS,
            )
        self._open_until = time.monotonic() + FAIL_OPEN_SECONDS

    def _resolve_open(self, batch: list[_Item]) -> None:
        pending = [(want, future) for _k, _p, want, future in batch if not future.done()]
        if pending:
            self._on_fail_open(len(pending))
        for want, future in pending:
            future.set_result(Grant(want, 0, 0.0, 0.0, fail_open=True))
