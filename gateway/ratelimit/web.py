"""The limiter at the HTTP edge: middleware, response headers and its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config import Settings
from gateway import keys, problems
from gateway.auth import TokenService
from gateway.ratelimit.buckets import SharedBuckets
from gateway.ratelimit.identity import ClientIdentity
from gateway.ratelimit.limiter import RateLimiter
from gateway.ratelimit.policies import Policy, classify, with_overrides

SWEEP_SECONDS = 10.0
# Redis must answer the limiter quickly or be skipped (fail open): no retries, short waits.
REDIS_TIMEOUT = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimits:
    """Everything the middleware needs: the table, who is calling, and the buckets."""

    policies: Mapping[str, Policy]
    identity: ClientIdentity
    limiter: RateLimiter
    limited: Mapping[str, Counter]


@web.middleware
async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests over their class's limit with 429 before any handler work."""
    limits = request.app.get(keys.RATE_LIMITS)
    if limits is None:
        return await handler(request)
    policy = classify(request.method, request.path, limits.policies)
    if policy is None:
        return await handler(request)
    limiter = limits.limiter
    key = limiter.bucket_key(policy, limits.identity.key(request, policy))
    decision = limiter.decide_now(policy, key) or await limiter.decide(policy, key)
    request[keys.RATE_DECISION] = decision
    if decision.allowed:
        return await handler(request)
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


async def add_ratelimit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``RateLimit-Policy``/``RateLimit`` (IETF draft) and ``X-RateLimit-*`` on limited routes."""
    decision = request.get(keys.RATE_DECISION)
    if decision is None:
        return
    policy = decision.policy
    headers = response.headers
    headers["RateLimit-Policy"] = policy.policy_header
    headers["X-RateLimit-Limit"] = str(policy.quota)
    if decision.remaining is not None:  # unknown while failing open
        headers["RateLimit"] = f'"{policy.name}";r={decision.remaining};t={decision.reset}'
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(decision.reset)


@contextlib.asynccontextmanager
async def open_rate_limits(
    settings: Settings, tokens: TokenService, registry: CollectorRegistry
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
    redis = Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
    buckets = SharedBuckets(redis, on_fail_open=fail_open.inc)
    limiter = RateLimiter(buckets, prefix=settings.app_id)
    sweeper: asyncio.Task[None] | None = None
    try:
        await buckets.load()
        sweeper = asyncio.create_task(_sweep(limiter))
        yield RateLimits(
            policies=policies,
            identity=ClientIdentity(tokens, trust_proxy=settings.trust_proxy),
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
