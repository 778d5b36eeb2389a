"""Local token leases over the shared Redis buckets: most requests never wait for Redis.

Each instance takes tokens from a client's shared bucket in small batches (a lease of at
most ``policy.lease_max`` tokens, kept ``LEASE_SECONDS``) and spends them locally; when a
lease runs half empty it is topped up in the background, so a busy client's requests
decide without awaiting anything. Tokens are debited in Redis *before* they are spent, so
instances never admit more than the bucket granted; the error is in how long tokens sit
in leases:

* over-admission: at any moment at most ``N x lease_max`` admitted requests (N instances)
  beyond a single token bucket's allowance, from tokens granted earlier and spent later;
* under-admission: a client hopping between instances can be refused while up to
  ``lease_max`` tokens per other instance sit unused; they are dropped after a second.

``exact`` policies (auth) take every token in Redis and hold none: no tolerance at all.
A refusal is cached until the bucket can hold a token again, which is exact too: other
instances can only take tokens, never add them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from typing import Protocol

from multidict import CIMultiDictProxy

from gateway.http.ratelimit.buckets import Grant
from gateway.http.ratelimit.policies import Policy

LEASE_SECONDS = 1.0
# How long the numbers an allowed verdict reports (remaining, reset) may be reused for the
# same client: the verdict itself is decided per request, only the headers lag this much.
SHOWN_SECONDS = 0.01
# Leases of clients not seen for this long are forgotten (their tokens are in Redis anyway).
IDLE_SECONDS = 60.0


@dataclasses.dataclass(slots=True)  # not frozen: frozen inits are slow on this path
class Decision:
    """The verdict on a request and what the rate-limit headers say about it.

    An allowed verdict is shared by a client's requests for up to ``SHOWN_SECONDS`` (see
    ``RateLimiter.decide_now``), so ``headers`` (``headers_base`` and the rate-limit
    headers, rendered by ``gateway.http.ratelimit.web``) are built once for all of them.
    """

    policy: Policy
    allowed: bool
    remaining: int | None  # None when Redis could not be asked (failing open)
    reset: int
    retry_after: int = 0
    headers_base: CIMultiDictProxy[str] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    headers: CIMultiDictProxy[str] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )


class TokenSource(Protocol):
    """Where leases come from: ``SharedBuckets`` in Redis (an in-memory one in tests)."""

    def take(self, key: str, policy: Policy, want: int) -> asyncio.Future[Grant]:
        """Up to ``want`` tokens of bucket ``key``."""


class _Lease:
    """This instance's share of one shared bucket."""

    __slots__ = ("blocked_until", "expires", "fetching", "full_at", "last_seen", "remaining",
                 "shown", "shown_until", "tokens", "used", "waiters")

    def __init__(self, now: float) -> None:
        self.tokens = 0
        self.expires = 0.0
        self.used = 0
        self.waiters = 0
        self.remaining = 0
        self.full_at = now
        self.blocked_until = 0.0
        self.last_seen = now
        self.fetching: asyncio.Future[Grant] | None = None
        # The allowed verdict last reported, reused until shown_until (see decide_now).
        self.shown: Decision | None = None
        self.shown_until = 0.0


class RateLimiter:
    """Decides requests against shared token buckets, through local leases."""

    def __init__(self, buckets: TokenSource, *, prefix: str) -> None:
        self._buckets = buckets
        self._prefix = prefix
        self._leases: dict[str, _Lease] = {}

    def bucket_key(self, policy: Policy, client: str) -> str:
        """The Redis key of ``client``'s bucket for ``policy``."""
        return f"{self._prefix}:rl:{policy.name}:{client}"

    def decide_now(self, policy: Policy, key: str) -> Decision | None:
        """The verdict from local state alone, or None if Redis must be asked."""
        lease = self._leases.get(key)
        if lease is None:
            return None
        now = time.monotonic()
        lease.last_seen = now
        tokens = lease.tokens
        if tokens > 0:
            if lease.expires > now:
                tokens -= 1
                lease.tokens = tokens
                lease.used += 1
                # Top up in the background at half a lease; exact policies hold nothing.
                if tokens * 2 < policy.lease_max and lease.fetching is None and not policy.exact:
                    self._fetch(policy, key, lease, top_up=True)
                # A busy client's requests share one verdict object (and its rendered
                # headers) for SHOWN_SECONDS: what they report lags by at most that much of
                # this client's own traffic on this instance; the admission is exact.
                if lease.shown is not None and now < lease.shown_until:
                    return lease.shown
                shown = lease.shown = Decision(
                    policy, True, lease.remaining + tokens, _ceil(lease.full_at - now)
                )
                lease.shown_until = now + SHOWN_SECONDS
                return shown
            lease.tokens = 0  # expired: those tokens are already debited; drop them
        if lease.blocked_until > now:
            # The draft wants the reset to name the same moment as Retry-After on a 429.
            wait = _ceil(lease.blocked_until - now) or 1
            return Decision(policy, False, 0, wait, wait)
        return None

    async def decide(self, policy: Policy, key: str) -> Decision:
        """The verdict, asking Redis (batched with concurrent requests) when needed."""
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease(time.monotonic())
        while True:
            decision = self.decide_now(policy, key)
            if decision is not None:
                return decision
            fetching = lease.fetching or self._fetch(policy, key, lease)
            lease.waiters += 1
            try:
                # Shielded: a client that disconnects must not cancel others' answer.
                grant = await asyncio.shield(fetching)
            finally:
                lease.waiters -= 1
            # An already-resolved future resumes us before its callbacks run: apply it here.
            _apply(lease, fetching)
            if grant.fail_open:
                return Decision(policy, True, None, 0)

    async def charge(self, policy: Policy, key: str, cost: int) -> Decision:
        """Spend ``cost`` more tokens of bucket ``key``, for a request that counts as several
        (its first token was spent by ``decide``): from the local lease first, the rest
        from the shared bucket in one round trip.

        Refused when the bucket cannot pay it all; what it held is spent anyway (the
        script grants what it has), so a client over its budget cannot probe it for free,
        and its Retry-After is when the whole request (``cost`` and the first token) could
        pass. Either way the verdict reports the bucket as the charge left it.
        """
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease(time.monotonic())
        fetching = lease.fetching
        if fetching is not None:  # a top-up in flight: its tokens are this client's first
            with contextlib.suppress(Exception):  # a failed one is _apply's to ignore
                await asyncio.shield(fetching)
            _apply(lease, fetching)
        now = time.monotonic()
        lease.last_seen = now
        if lease.expires <= now:
            lease.tokens = 0  # expired: already debited in Redis, so dropped, not reported
        local = min(cost, lease.tokens)
        lease.tokens -= local
        lease.used += local
        lease.shown = None  # what it reports changed
        rest = cost - local
        if rest <= 0:
            return Decision(policy, True, lease.remaining + lease.tokens,
                            _ceil(lease.full_at - now))
        grant = await self._buckets.take(key, policy, rest)
        if grant.fail_open:
            return Decision(policy, True, None, 0)
        lease.remaining = grant.remaining
        lease.full_at = now + grant.full_in
        if grant.granted < rest:
            # The bucket paid what it had (the lease too): a retry must find all of it
            # again. The fraction of a token left is not counted, so this is never early.
            wait = _ceil((cost + 1 - grant.remaining) / policy.rate) or 1
            return Decision(policy, False, grant.remaining, wait, wait)
        return Decision(policy, True, grant.remaining + lease.tokens, _ceil(grant.full_in))

    def sweep(self) -> None:
        """Forget leases of clients gone quiet."""
        cutoff = time.monotonic() - IDLE_SECONDS
        idle = [k for k, v in self._leases.items() if v.last_seen < cutoff and not v.fetching]
        for key in idle:
            del self._leases[key]

    def _fetch(
        self, policy: Policy, key: str, lease: _Lease, *, top_up: bool = False
    ) -> asyncio.Future[Grant]:
        # Ask for what recent demand suggests, never holding more than lease_max here. A
        # background top-up asks for at least half a lease: asking for twice what was used
        # during the last round trip would keep the lease just under half, with a Redis
        # round trip always in flight for a busy client.
        demand = max(lease.waiters + 1, lease.used * 2, policy.lease_max // 2 if top_up else 0)
        want = max(1, min(policy.lease_max - lease.tokens, demand))
        lease.used = 0
        future = self._buckets.take(key, policy, want)
        lease.fetching = future
        # Top-ups nobody awaits are applied by this callback; awaited ones by the waiter.
        future.add_done_callback(lambda done: _apply(lease, done))
        return future

    def __len__(self) -> int:
        return len(self._leases)


def _apply(lease: _Lease, done: asyncio.Future[Grant]) -> None:
    if lease.fetching is not done:
        return  # applied already
    lease.fetching = None
    if done.cancelled() or done.exception() is not None:
        return
    grant = done.result()
    if grant.fail_open:
        return
    now = time.monotonic()
    lease.shown = None  # the bucket's numbers changed
    lease.tokens += grant.granted
    lease.expires = now + LEASE_SECONDS
    lease.remaining = grant.remaining
    lease.full_at = now + grant.full_in
    lease.blocked_until = now + grant.retry_after if grant.granted == 0 else 0.0


def _ceil(seconds: float) -> int:
    return max(0, math.ceil(seconds))
