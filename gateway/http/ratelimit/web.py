"""The limiter at the HTTP edge: middleware, response headers and its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Mapping

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, istr
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from config import Settings
from gateway.http import problems
from gateway.http.keys import RATE_DECISION
from gateway.http.ratelimit.buckets import SharedBuckets
from gateway.http.ratelimit.identity import ClientIdentity
from gateway.http.ratelimit.limiter import Decision, RateLimiter
from gateway.http.ratelimit.policies import Policy, classify, with_overrides
from gateway.identity.auth import Principal
from stores.redisdb import redis_client

SWEEP_SECONDS = 10.0
# Redis must answer the limiter quickly or be skipped (fail open): no retries, short waits.
REDIS_TIMEOUT = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimits:
    """Everything the edge needs to limit: the table, who is calling, and the buckets."""

    policies: Mapping[str, Policy]
    identity: ClientIdentity
    limiter: RateLimiter
    limited: Mapping[str, Counter]
    # Fixed-path routes classify the same on every request: remembered per route.
    _by_route: dict[web.AbstractRoute, Policy | None] = dataclasses.field(default_factory=dict)

    def policy_for(self, request: web.Request) -> Policy | None:
        """The policy limiting ``request`` (``classify`` of its method and path)."""
        route = request.match_info.route
        try:
            return self._by_route[route]
        except KeyError:
            policy = classify(request.method, request.path, self.policies)
            if isinstance(route.resource, web.PlainResource) and route.method != "*":
                self._by_route[route] = policy
            return policy


def verdict(
    request: web.Request, limits: RateLimits, caller: tuple[Principal, bool] | None
) -> Decision | Awaitable[Decision] | None:
    """The limiter's verdict on ``request``; None when its route is not limited.

    ``caller``: the request's verified principal and whether it came as a stream ticket.
    Most verdicts are decided locally and returned as they are; one that needs Redis comes
    as an awaitable (no coroutine is created on the fast path).
    """
    policy = limits.policy_for(request)
    if policy is None:
        return None
    limiter = limits.limiter
    key = limiter.bucket_key(policy, limits.identity.key(request, policy, caller))
    return limiter.decide_now(policy, key) or limiter.decide(policy, key)


async def charge(
    request: web.Request, limits: RateLimits, caller: tuple[Principal, bool] | None, units: int
) -> Decision | None:
    """Make ``request`` count as ``units`` requests (at most a full bucket, so any request
    can pass on one): the edge's ``verdict`` took one token, this takes the others.

    The verdict replaces the edge's one on the request, so the response's rate-limit
    headers (allowed or refused) say what the bucket holds after this charge.
    None when nothing more is taken (its route is not limited, or ``units`` is 1).
    """
    policy = limits.policy_for(request)
    cost = min(units, policy.burst) - 1 if policy is not None else 0
    if policy is None or cost <= 0:
        return None
    limiter = limits.limiter
    key = limiter.bucket_key(policy, limits.identity.key(request, policy, caller))
    decision = await limiter.charge(policy, key, cost)
    request[RATE_DECISION] = decision
    return decision


def too_many_requests(request: web.Request, limits: RateLimits, decision: Decision) -> web.Response:
    """The 429 problem for a refused request (counted by policy)."""
    policy = decision.policy
    limits.limited[policy.name].inc()
    return problems.problem(
        request,
        status=429,
        code="RATE_LIMITED",
        title="Too many requests",
        detail=f"The {policy.name!r} limit ({policy.quota} requests per {policy.window}s, "
        f"bursts of {policy.burst}) is used up; retry in {decision.retry_after}s.",
        headers={"Retry-After": str(decision.retry_after)},
    )


_RATELIMIT = istr("RateLimit")
_REMAINING = istr("X-RateLimit-Remaining")
_RESET = istr("X-RateLimit-Reset")


def with_ratelimit_headers(
    block: CIMultiDictProxy[str], decision: Decision
) -> CIMultiDictProxy[str]:
    """``block`` followed by ``RateLimit-Policy``/``RateLimit`` (IETF draft) and
    ``X-RateLimit-*`` for ``decision``: one block for the edge to add to a response.

    Kept on the decision, which a busy client's requests share (see ``Decision``), for the
    last ``block`` it was asked with: usually the only one.
    """
    if decision.headers_base is block and decision.headers is not None:
        return decision.headers
    policy = decision.policy
    combined = CIMultiDict(block)
    combined.extend(policy.header_block)
    remaining = decision.remaining
    if remaining is not None:  # unknown while failing open
        left, reset = str(remaining), str(decision.reset)
        combined.extend((
            (_RATELIMIT, f'"{policy.name}";r={left};t={reset}'),
            (_REMAINING, left),
            (_RESET, reset),
        ))
    decision.headers_base = block
    decision.headers = CIMultiDictProxy(combined)
    return decision.headers


@contextlib.asynccontextmanager
async def open_rate_limits(
    settings: Settings, registry: CollectorRegistry
) -> AsyncIterator[RateLimits]:
    """The limiter with its own Redis client, metrics and idle-client sweeper."""
    policies = with_overrides(settings.rate_limits)
    limited = Counter(
        "mercato_ratelimit_limited_total", "Requests refused with 429", ["policy"],
        registry=registry,
    )
    fail_open = Counter(
        "mercato_ratelimit_fail_open_total",
        "Requests admitted without a limit because Redis did not answer",
        registry=registry,
    )
    # Its own pool: a burst of new buckets must not queue behind revocation reads.
    redis = redis_client(
        settings, socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0),
        pool_timeout=REDIS_TIMEOUT,
    )
    buckets = SharedBuckets(redis, on_fail_open=fail_open.inc)
    limiter = RateLimiter(buckets, prefix=settings.app_id)
    sweeper: asyncio.Task[None] | None = None
    try:
        await buckets.load()
        sweeper = asyncio.create_task(_sweep(limiter))
        yield RateLimits(
            policies=policies,
            identity=ClientIdentity(trust_proxy=settings.trust_proxy),
            limiter=limiter,
            limited={name: limited.labels(name) for name in policies},
        )
    finally:
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        await buckets.close()
        await redis.aclose()


async def _sweep(limiter: RateLimiter) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        limiter.sweep()
