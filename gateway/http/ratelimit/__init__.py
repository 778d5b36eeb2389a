"""Rate limiting: per-client token buckets per route class, shared through Redis."""

from gateway.http.ratelimit.limiter import Decision, RateLimiter
from gateway.http.ratelimit.policies import POLICIES, Policy, classify, with_overrides
from gateway.http.ratelimit.web import (
    RateLimits,
    charge,
    open_rate_limits,
    too_many_requests,
    verdict,
    with_ratelimit_headers,
)

__all__ = [
    "POLICIES",
    "Decision",
    "Policy",
    "RateLimiter",
    "RateLimits",
    "charge",
    "classify",
    "open_rate_limits",
    "too_many_requests",
    "verdict",
    "with_overrides",
    "with_ratelimit_headers",
]
